"""Shape populations for the synthetic renders, from :mod:`digitaltwin_jax.geometry.sampling` (paper
section 3.2 "Shape Augmentation": DR-feature sampling; supplementary 4.4: C-PCA and No-Aug).

Once per data set (in the parent process, before any worker starts):

1. the stand-in subject database: :func:`~digitaltwin_jax.geometry.sampling.sample_population`
   (``population_size`` heads from the model's identity prior, ``population_groups`` k-means groups
   standing in for the paper's gender x ethnicity groups);
2. all ``count`` training shapes in one batch with the chosen sampler (``sample_dr`` /
   ``sample_cpca`` / ``sample_noaug``), keyed by ``jax.random.PRNGKey(seed)``.  JAX's partitionable
   threefry makes sample ``i`` depend on ``(seed, i)`` only, not on ``count``;
3. each shape's *closest subject* within its group (the paper's texture rule): subjects lie in the
   identity span, so the nearest one in vertex space is the nearest in the orthonormalised identity
   coordinates (the out-of-span residual is the same for all of them); No-Aug shapes are their own
   subject;
4. each subject's albedo map: a fixed random assignment of bank maps (``subject_albedo``).

Files: ``population.npz`` (subjects, groups, identity coefficients, subject_albedo) and
``shapes.npy`` ``(count, V, 3) float32`` + ``shapes_meta.npz`` (group, subject per shape), read by
the workers through :class:`PrecomputedShapes` (memory-mapped).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write
from digitaltwin_jax.synth.shapes import IdentityProjector, ShapeSample

__all__ = ["PrecomputedShapes", "prepare_population", "population_source", "closest_subjects"]

POPULATION_FILE = "population.npz"
SHAPES_FILE = "shapes.npy"
SHAPES_META_FILE = "shapes_meta.npz"


class PrecomputedShapes:
    """Shape source reading the pre-sampled shape of image ``index`` (``sample(rng, index)``)."""

    def __init__(self, shapes, group, subject, projector: IdentityProjector, name: str):
        self.shapes = shapes
        self.group = np.asarray(group)
        self.subject = np.asarray(subject)
        self.projector = projector
        self.name = name

    def sample(self, rng: np.random.Generator, index: int | None = None) -> ShapeSample:
        if index is None:
            raise ValueError("precomputed shapes are looked up by image index")
        if not 0 <= int(index) < len(self.shapes):
            raise ValueError(f"no precomputed shape for image {index} (have {len(self.shapes)})")
        v = np.asarray(self.shapes[int(index)], np.float32)
        a, res = self.projector(v)
        return ShapeSample(v, a, res, int(self.subject[index]), int(self.group[index]))


def closest_subjects(shapes, shape_groups, subjects, subject_groups, projector: IdentityProjector) -> np.ndarray:
    """``(n,) int64`` index of the nearest subject (vertex L2) of the same group for each shape.

    Subjects must lie in the projector's affine span (identity-space heads), which makes the nearest
    one in vertex space the nearest in the orthonormal span coordinates.
    """
    def coords(v):
        d = np.asarray(v, np.float64).reshape(len(v), -1) - projector.mean.reshape(1, -1)
        return d @ projector.q

    cs = coords(subjects)
    out = np.empty(len(shapes), np.int64)
    shape_groups = np.asarray(shape_groups)
    subject_groups = np.asarray(subject_groups)
    for lo in range(0, len(shapes), 512):
        cx = coords(shapes[lo:lo + 512])
        d = (cx**2).sum(1)[:, None] - 2.0 * cx @ cs.T + (cs**2).sum(1)[None]
        d = np.where(shape_groups[lo:lo + 512, None] == subject_groups[None], d, np.inf)
        out[lo:lo + 512] = np.argmin(d, axis=1)
    return out


def prepare_population(model, config, out_dir) -> None:
    """Build and save the population and all shapes of ``config`` in ``out_dir`` (no-op when the
    files exist)."""
    out_dir = Path(out_dir)
    files = [out_dir / POPULATION_FILE, out_dir / SHAPES_FILE, out_dir / SHAPES_META_FILE]
    if all(f.exists() for f in files):
        return
    import jax

    from digitaltwin_jax.geometry import sampling as S

    k_pop, k_shapes = jax.random.split(jax.random.PRNGKey(int(config.seed)))
    pop = S.sample_population(model, k_pop, num_subjects=int(config.population_size),
                              num_groups=int(config.population_groups))
    if config.sampler == "dr":
        smp = S.make_dr_sampler(pop, model.vertices, model.faces)
        out = S.sample_dr(k_shapes, smp, int(config.count), chunk=256,
                          r_range=tuple(getattr(config, "dr_radius", S.R_RANGE)))
    elif config.sampler == "cpca":
        out = S.sample_cpca(k_shapes, pop, int(config.count))
    elif config.sampler == "noaug":
        out = S.sample_noaug(k_shapes, pop, int(config.count))
    else:
        raise ValueError(f"no population for sampler {config.sampler!r}")
    shapes = np.asarray(out["vertices"], np.float32)
    groups = np.asarray(out["group"], np.int32)
    projector = IdentityProjector(model.vertices, model.identity_basis)
    if "subject" in out:
        subject = np.asarray(out["subject"], np.int64)
    else:
        subject = closest_subjects(shapes, groups, pop.vertices, pop.groups, projector)
    rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), 0x5B1EC7]))
    subject_albedo = rng.integers(0, int(config.bank_size), size=len(pop.vertices))
    with atomic_write(out_dir / POPULATION_FILE) as fh:
        np.savez(fh, vertices=pop.vertices, groups=pop.groups, identity_coeffs=pop.identity_coeffs,
                 subject_albedo=subject_albedo.astype(np.int32), num_groups=np.int32(pop.num_groups))
    with atomic_write(out_dir / SHAPES_META_FILE) as fh:
        np.savez(fh, group=groups, subject=subject.astype(np.int32))
    with atomic_write(out_dir / SHAPES_FILE) as fh:
        np.save(fh, shapes)


def population_source(model, config, out_dir=None):
    """``(source, subject_albedo)`` for ``config.sampler`` in ``("dr", "cpca", "noaug")``, reading
    the files written by :func:`prepare_population` (which it runs if they are missing)."""
    if out_dir is None:
        raise ValueError(f"the {config.sampler!r} sampler needs an output folder for its population")
    out_dir = Path(out_dir)
    prepare_population(model, config, out_dir)
    shapes = np.load(out_dir / SHAPES_FILE, mmap_mode="r")
    if shapes.shape[0] != int(config.count) or shapes.shape[1:] != model.vertices.shape:
        raise ValueError(f"{out_dir / SHAPES_FILE} holds {shapes.shape}, expected "
                         f"({config.count}, {model.vertices.shape[0]}, 3); use a new folder")
    with np.load(out_dir / SHAPES_META_FILE) as z:
        group, subject = z["group"], z["subject"]
    with np.load(out_dir / POPULATION_FILE) as z:
        subject_albedo = z["subject_albedo"]
    projector = IdentityProjector(model.vertices, model.identity_basis)
    return PrecomputedShapes(shapes, group, subject, projector, config.sampler), subject_albedo
