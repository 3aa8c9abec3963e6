"""Sets of real face photos with known identities, for identity benchmarks.

A photo set is a folder holding image files and a ``manifest.json`` that lists them.  It serves
benchmarks that need several photos of the same person: same-person retrieval of 3D reconstructions,
and the distance between identity embeddings of real photos and of synthetic renders.

Manifest format (``<folder>/manifest.json``, UTF-8 JSON): a list with one object per photo::

    [
      {"file": "collins_1.jpg",            # path relative to the folder (required)
       "person": "Eileen Collins",         # identity label; same string = same person (required)
       "source": "https://... or owner/repo:path@commit",  # where the photo came from (required)
       "licence": "Public domain (work of the US federal government)",  # (required)
       "author": "NASA",                   # and/or "credit": attribution text (optional)
       "notes": "..."},                    # anything else: crop, resizing, pose (optional)
      ...
    ]

Every required field is a non-empty string; optional fields, when present, are strings.  ``file``
must name an existing file inside the folder (no absolute paths, no ``..``), and no file may be
listed twice.  The set must contain at least two persons with at least two photos each (persons
with a single photo are allowed, as distractors).  Anything else raises a ``ValueError`` that names
the folder, the entry and the problem.

:func:`load_photo_set` reads any such folder.  :func:`default_photo_set` returns the set shipped in
the source tree under ``benchmarks/data/real_faces`` (None when absent, e.g. in an installed
wheel); the environment variable ``DIGITALTWIN_REAL_FACES`` names another folder to use instead.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = ["MANIFEST_NAME", "PhotoSet", "load_photo_set", "default_photo_set", "default_photo_set_dir"]

MANIFEST_NAME = "manifest.json"
REQUIRED_FIELDS = ("file", "person", "source", "licence")
OPTIONAL_FIELDS = ("author", "credit", "notes")
ENV_VAR = "DIGITALTWIN_REAL_FACES"
MIN_PERSONS_WITH_PAIRS = 2


@dataclass(frozen=True, eq=False)
class PhotoSet:
    """Photos with identity labels, in manifest order.

    Attributes:
      paths: ``N`` absolute file paths.
      person_ids: ``(N,) int64``, persons numbered 0, 1, ... in order of first appearance (read-only).
      persons: the person names; ``persons[person_ids[i]]`` is the person in ``paths[i]``.
      licences: ``N`` licence strings, one per photo.
      sources: ``N`` source strings (URL or repository + path + commit).
      credits: ``N`` attribution strings ("author" and "credit" joined; may be empty).
      folder: the folder the manifest was read from.
    """

    paths: tuple[Path, ...]
    person_ids: np.ndarray
    persons: tuple[str, ...]
    licences: tuple[str, ...]
    sources: tuple[str, ...] = ()
    credits: tuple[str, ...] = ()
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_persons(self) -> int:
        return len(self.persons)

    def photos_per_person(self) -> np.ndarray:
        """``(P,) int64``: number of photos of each person."""
        return np.bincount(self.person_ids, minlength=len(self.persons)).astype(np.int64)

    def indices_of(self, person: str | int) -> np.ndarray:
        """Indices (into ``paths``) of the photos of one person, given by name or id."""
        pid = self.persons.index(person) if isinstance(person, str) else int(person)
        if not 0 <= pid < len(self.persons):
            raise ValueError(f"no person {person!r} in this photo set ({len(self.persons)} persons)")
        return np.flatnonzero(self.person_ids == pid)


def _bad(folder: Path, msg: str) -> ValueError:
    return ValueError(f"photo set {str(folder)!r}: {msg}")


def load_photo_set(folder) -> PhotoSet:
    """Read ``<folder>/manifest.json`` (format in the module docstring) and check it.

    Raises:
      ValueError: the folder or manifest is missing, the manifest is not valid JSON or not in the
        documented format, an entry lacks a required field or has an empty one, a listed file is
        missing or listed twice, or fewer than two persons have at least two photos.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise _bad(folder, "is not an existing folder")
    folder = folder.resolve()
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise _bad(folder, f"no {MANIFEST_NAME} in the folder")
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(folder, f"{MANIFEST_NAME} is malformed: not valid UTF-8 JSON ({e})") from None
    if not isinstance(entries, list):
        raise _bad(folder, f"{MANIFEST_NAME} is malformed: the top level must be a list of photo "
                           f"entries, got {type(entries).__name__}")
    if not entries:
        raise _bad(folder, f"{MANIFEST_NAME} lists no photos")

    paths: list[Path] = []
    names: list[str] = []
    licences: list[str] = []
    sources: list[str] = []
    credits: list[str] = []
    seen: dict[Path, int] = {}
    for i, entry in enumerate(entries):
        where = f"{MANIFEST_NAME} entry {i}"
        if not isinstance(entry, dict):
            raise _bad(folder, f"{where} is malformed: must be an object, got {type(entry).__name__}")
        for key in REQUIRED_FIELDS:
            value = entry.get(key)
            if value is None:
                raise _bad(folder, f"{where} is missing the required field {key!r}")
            if not isinstance(value, str) or not value.strip():
                raise _bad(folder, f"{where}: field {key!r} must be a non-empty string, got {value!r}")
        for key in OPTIONAL_FIELDS:
            if key in entry and not isinstance(entry[key], str):
                raise _bad(folder, f"{where}: field {key!r} must be a string, got {entry[key]!r}")
        rel = PurePosixPath(entry["file"].replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts or Path(entry["file"]).is_absolute():
            raise _bad(folder, f"{where}: file {entry['file']!r} must be a relative path inside the folder")
        path = folder.joinpath(*rel.parts)
        if not path.is_file():
            raise _bad(folder, f"{where}: listed file {entry['file']!r} is missing")
        if path in seen:
            raise _bad(folder, f"{where}: file {entry['file']!r} is listed twice (also entry {seen[path]})")
        seen[path] = i
        paths.append(path)
        names.append(entry["person"].strip())
        licences.append(entry["licence"].strip())
        sources.append(entry["source"].strip())
        credits.append("; ".join(entry[k].strip() for k in ("author", "credit") if entry.get(k, "").strip()))

    persons: list[str] = []
    index: dict[str, int] = {}
    ids = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        if name not in index:
            index[name] = len(persons)
            persons.append(name)
        ids[i] = index[name]
    counts = np.bincount(ids, minlength=len(persons))
    with_pairs = int(np.sum(counts >= 2))
    if with_pairs < MIN_PERSONS_WITH_PAIRS:
        raise _bad(folder, f"needs at least {MIN_PERSONS_WITH_PAIRS} persons with at least 2 photos "
                           f"each; has {with_pairs} ({len(persons)} persons, {len(paths)} photos)")
    ids.setflags(write=False)
    return PhotoSet(paths=tuple(paths), person_ids=ids, persons=tuple(persons), licences=tuple(licences),
                    sources=tuple(sources), credits=tuple(credits), folder=folder)


def default_photo_set_dir() -> Path:
    """Where the shipped set lives in a source checkout: ``<repo>/benchmarks/data/real_faces``."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "real_faces"


def default_photo_set() -> PhotoSet | None:
    """The real-face set to benchmark with, or None when there is none.

    ``$DIGITALTWIN_REAL_FACES`` (a folder with a manifest), when set and non-empty, takes precedence
    and must be valid.  Otherwise the set shipped in the source tree (:func:`default_photo_set_dir`)
    is loaded when its manifest exists; None when it does not (e.g. in an installed wheel).
    """
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return load_photo_set(override)
    folder = default_photo_set_dir()
    if not (folder / MANIFEST_NAME).is_file():
        return None
    return load_photo_set(folder)
