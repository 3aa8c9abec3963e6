"""Pruning of the command's cache folders: files another version of the code wrote are removed once
they have not been written for a while.

The fit's store (``fitting.exported``) and the texture cache (``texture.cache``) key their files by
the code that made them (the package's sources, or a format number), so every new version adds
files and the old ones are never read again (2.5 MB for a condensed corrective system, 57 MB for a
2048 UV sampling).  Each store names its files ``<family>-<version tag>-<key>`` and, after writing
one, calls :func:`prune_other_versions`: files of the same family with another version tag (or
from before the tags, with none) are deleted when they are older than ``min_age_s`` (default one
day, so two installations sharing a folder do not delete each other's files while both are in use).
"""
from __future__ import annotations

import time
from pathlib import Path

__all__ = ["PRUNE_MIN_AGE_S", "prune_other_versions"]

PRUNE_MIN_AGE_S = 24 * 3600.0


def prune_other_versions(folder, family: str, tag: str, suffix: str, *, min_age_s: float = PRUNE_MIN_AGE_S,
                         pattern: str | None = None) -> list[Path]:
    """Delete ``folder/<family>-*<suffix>`` files (or those matching the glob ``pattern``) whose name
    does not start with ``<family>-<tag>-`` and whose modification time is at least ``min_age_s``
    seconds ago; returns what was deleted.  Files that vanish or cannot be deleted meanwhile are
    skipped (another process may prune too); names starting with ``.`` (temporary files) are kept."""
    folder = Path(folder)
    keep = f"{family}-{tag}-"
    now = time.time()
    gone = []
    try:
        candidates = list(folder.glob(pattern or f"{family}-*{suffix}"))
    except OSError:
        return gone
    for p in candidates:
        if p.name.startswith(keep) or p.name.startswith("."):
            continue
        try:
            if now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                gone.append(p)
        except OSError:
            continue
    return gone
