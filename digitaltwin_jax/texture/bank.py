"""Texture bank for the areas a selfie never sees (paper section 3.5: "we recover textures on other
areas, e.g. back of head and neck, by using the UV texture of one of the 482 subjects that is
*closest* to the query subject ... closeness as L1 loss on the distance between [identity]
embeddings").

An entry is either *procedural* (:class:`~.skin.SkinParams`, baked on demand in the model's
layout; we ship no scans) or *photo-derived* (a uint8 diffuse map in the model's UV layout, made by
:func:`~.pipeline.add_photo_entry` from a redistributable photo through the texture pipeline).

Selection rule (:meth:`TextureBank.select`), documented once:
  1. identity rule (the paper's): when a query embedding is given and some entries have an
     embedding, pick the entry with the smallest L1 distance ``sum |e_query - e_entry|`` among them;
  2. tone rule: otherwise (no query embedding, or no entry with one) pick the entry whose base skin
     colour is closest (L1, sRGB) to the observed skin colour (median of confidently projected
     texels), or entry 0 when no colour is given.
Procedural entries carry **no** embedding by default (they are never photos, so they have no
photo-derived identity); :func:`embed_entries` can give them one by rendering each entry frontally on
the mean head and running the same face embedder, which puts them in the identity rule as well.
"""
from __future__ import annotations

import dataclasses
import io as _io
from typing import Callable

import numpy as np

from digitaltwin_jax.texture.procedural import bake_procedural, skin_layout
from digitaltwin_jax.texture.skin import SkinParams, skin_base_color

__all__ = ["BankEntry", "TextureBank", "default_texture_bank", "embed_entries",
           "save_bank", "load_bank", "EMBEDDING_DIM"]

EMBEDDING_DIM = 128


@dataclasses.dataclass(frozen=True)
class BankEntry:
    """One bank texture.

    Attributes:
      name: identifier.
      embedding: ``(128,) float32`` identity embedding, or None.
      params: :class:`SkinParams` for a procedural entry, else None.
      texture: ``(s, s, 3) uint8`` diffuse map in the model's UV layout for a photo entry, else None.
      base_color: ``(3,) float32`` sRGB base skin colour used by the tone rule.
    """

    name: str
    embedding: np.ndarray | None = None
    params: SkinParams | None = None
    texture: np.ndarray | None = None
    base_color: np.ndarray | None = None

    @property
    def procedural(self) -> bool:
        return self.params is not None


@dataclasses.dataclass(frozen=True)
class TextureBank:
    """An immutable list of :class:`BankEntry` (adding returns a new bank)."""

    entries: tuple[BankEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def embeddings(self) -> np.ndarray:
        """``(N, 128) float32``; rows of entries without an embedding are NaN."""
        out = np.full((len(self.entries), EMBEDDING_DIM), np.nan, np.float32)
        for i, e in enumerate(self.entries):
            if e.embedding is not None:
                out[i] = e.embedding
        return out

    def select(self, embedding=None, observed_color=None) -> tuple[int, str]:
        """Index of the entry to use and the rule that chose it (``"identity"``, ``"tone"`` or
        ``"default"``); see the module docstring."""
        if not self.entries:
            raise ValueError("the texture bank is empty")
        if embedding is not None:
            q = np.asarray(embedding, np.float32).ravel()
            if q.shape != (EMBEDDING_DIM,) or not np.isfinite(q).all():
                raise ValueError(f"embedding must be a finite ({EMBEDDING_DIM},) vector, got {q.shape}")
            E = self.embeddings
            has = np.isfinite(E).all(axis=1)
            if has.any():
                d = np.where(has, np.abs(np.nan_to_num(E) - q).sum(axis=1), np.inf)
                return int(np.argmin(d)), "identity"
        if observed_color is not None:
            c = np.asarray(observed_color, np.float32).ravel()[:3]
            base = np.stack([_base_color(e) for e in self.entries])
            return int(np.argmin(np.abs(base - c).sum(axis=1))), "tone"
        return 0, "default"

    def texture(self, index: int, model, size: int = 2048, *, gen_size: int = 512) -> np.ndarray:
        """``(size, size, 3) float32`` diffuse map of entry ``index`` in ``model``'s UV layout."""
        e = self.entries[index]
        if e.params is not None:
            return bake_procedural(e.params, model.vertices, model.faces, model.uvs, model.uv_faces,
                                   size, layout=_layout_or_none(model), eye_mask=getattr(model, "eye_mask", None),
                                   gen_size=gen_size)
        import cv2

        tex = e.texture.astype(np.float32) / 255.0
        if tex.shape[0] != size:
            tex = cv2.resize(tex, (size, size), interpolation=cv2.INTER_CUBIC if size > tex.shape[0]
                             else cv2.INTER_AREA)
        return np.clip(tex, 0.0, 1.0)

    def with_entry(self, entry: BankEntry) -> "TextureBank":
        return TextureBank(self.entries + (entry,))


def _base_color(e: BankEntry) -> np.ndarray:
    if e.base_color is not None:
        return np.asarray(e.base_color, np.float32)
    if e.params is not None:
        return skin_base_color(e.params.tone, e.params.undertone)
    return np.median(e.texture.reshape(-1, 3), axis=0).astype(np.float32) / 255.0


def _layout_or_none(model):
    try:
        return skin_layout(model)
    except (AttributeError, IndexError, TypeError):
        return None


def default_texture_bank(n: int = 12, seed: int = 0) -> TextureBank:
    """Procedural bank spanning skin tones light to dark (Monk scale), deterministic from ``seed``.

    Entry i has tone ``i / (n - 1)``; undertone, redness, lip tint, hair darkness and variation are
    drawn from ``numpy.random.default_rng(seed)`` (hair darkness grows with tone on average)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        tone = i / max(n - 1, 1)
        p = SkinParams(
            tone=tone,
            undertone=float(rng.uniform(-0.8, 0.8)),
            redness=float(rng.uniform(0.15, 0.5) * (1.0 - 0.5 * tone)),
            lip_tint=float(rng.uniform(0.4, 0.8)),
            hair_darkness=float(np.clip(0.4 + 0.5 * tone + rng.uniform(-0.15, 0.15), 0.0, 1.0)),
            variation=float(rng.uniform(0.04, 0.08)),
            seed=int(rng.integers(0, 2**31 - 1)),
        )
        entries.append(BankEntry(name=f"procedural-{i:02d}", params=p,
                                 base_color=skin_base_color(p.tone, p.undertone)))
    return TextureBank(tuple(entries))


def embed_entries(bank: TextureBank, model, embed_fn: Callable, *, image_size: int = 256,
                  tex_size: int = 512) -> TextureBank:
    """Give entries without an embedding the embedder's output on a frontal render of the entry on
    the mean head (so procedural entries take part in the identity rule).

    Args:
      bank: the bank.
      model: head model (mean shape, UVs).
      embed_fn: ``(H, W, 3) uint8 image -> (128,) array or None`` (None: no face found; the entry
        keeps no embedding).
      image_size: side of the rendered image.
      tex_size: texture resolution used for the render.

    Returns:
      a new :class:`TextureBank`.
    """
    from digitaltwin_jax.render.views import render_previews

    out = []
    for i, e in enumerate(bank.entries):
        if e.embedding is None:
            tex = bank.texture(i, model, tex_size)
            img = render_previews(model.vertices, model.faces, (image_size, image_size), yaws=(0.0,),
                                  uvs=model.uvs, uv_faces=model.uv_faces, texture=tex,
                                  ambient=0.5, diffuse=0.55)[0]
            emb = embed_fn((np.clip(img, 0, 1) * 255).astype(np.uint8))
            if emb is not None:
                emb = np.asarray(emb, np.float32).ravel()
                if emb.shape != (EMBEDDING_DIM,):
                    raise ValueError(f"embed_fn returned shape {emb.shape}, expected ({EMBEDDING_DIM},)")
                e = dataclasses.replace(e, embedding=emb)
        out.append(e)
    return TextureBank(tuple(out))


def save_bank(path, bank: TextureBank) -> None:
    """Write the bank as one ``.npz`` (atomically): names, embeddings (NaN rows for none), procedural
    parameters (NaN rows for photo entries), base colours and the photo entries' uint8 maps."""
    from digitaltwin_jax.io.atomic import atomic_write_bytes

    n = len(bank.entries)
    params = np.full((n, 7), np.nan)
    base = np.full((n, 3), np.nan, np.float32)
    arrays = {}
    for i, e in enumerate(bank.entries):
        if e.params is not None:
            params[i] = e.params.as_array()
        if e.base_color is not None:
            base[i] = e.base_color
        if e.texture is not None:
            arrays[f"texture_{i}"] = e.texture
    buf = _io.BytesIO()
    np.savez_compressed(buf, names=np.array([e.name for e in bank.entries]), embeddings=bank.embeddings,
                        params=params, base_colors=base, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_bank(path) -> TextureBank:
    """Read a bank written by :func:`save_bank`."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(s) for s in z["names"]]
        E, P, B = z["embeddings"], z["params"], z["base_colors"]
        entries = []
        for i, name in enumerate(names):
            entries.append(BankEntry(
                name=name,
                embedding=E[i].copy() if np.isfinite(E[i]).all() else None,
                params=SkinParams.from_array(P[i]) if np.isfinite(P[i]).all() else None,
                texture=z[f"texture_{i}"].copy() if f"texture_{i}" in z.files else None,
                base_color=B[i].copy() if np.isfinite(B[i]).all() else None,
            ))
    return TextureBank(tuple(entries))
