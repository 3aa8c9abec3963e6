"""Populations of the DR / C-PCA / No-Aug samplers: closest-subject rule and the data-set wiring."""
import numpy as np

from digitaltwin_jax.synth.dataset import DatasetConfig, generate, load_shard
from digitaltwin_jax.synth.population import closest_subjects
from digitaltwin_jax.synth.scene import SceneConfig
from digitaltwin_jax.synth.shapes import IdentityProjector


def test_closest_subject_matches_brute_force(low_model):
    m = low_model
    rng = np.random.default_rng(0)
    k = m.identity_basis.shape[0]
    subj = m.vertices + np.tensordot(rng.standard_normal((30, k)), m.identity_basis, axes=1)
    sgroups = rng.integers(0, 3, 30)
    # shapes off the identity span (DR-like): subject blends plus a non-linear bump
    shapes = 0.5 * subj[rng.integers(0, 30, 40)] + 0.5 * subj[rng.integers(0, 30, 40)]
    shapes = shapes + 2.0 * np.sin(shapes / 17.0)
    groups = rng.integers(0, 3, 40)
    got = closest_subjects(shapes, groups, subj, sgroups, IdentityProjector(m.vertices, m.identity_basis))
    for i in range(40):
        cand = np.flatnonzero(sgroups == groups[i])
        d = ((subj[cand] - shapes[i]) ** 2).sum(axis=(1, 2))
        assert got[i] == cand[np.argmin(d)]


def test_noaug_data_set_renders_population_subjects(tmp_path, low_model):
    cfg = DatasetConfig(count=3, seed=4, shard_size=3, sampler="noaug", population_size=8, population_groups=2,
                        bank_size=2, texture_size=64,
                        scene=SceneConfig(image_size=32, photo_background_probability=0.0))
    generate(tmp_path, cfg, workers=1, progress=False, contact_sheet_path=None)
    d = load_shard(tmp_path / "shard_00000.npz")
    with np.load(tmp_path / "population.npz") as p:
        pv, pg, palb, coeffs = p["vertices"], p["groups"], p["subject_albedo"], p["identity_coeffs"]
    assert pv.shape == (8, low_model.num_vertices, 3)
    for i in range(3):
        s = d["subject"][i]
        np.testing.assert_array_equal(d["vertices"][i], pv[s])
        assert d["group"][i] == pg[s]
        assert d["albedo"][i] == palb[s]  # the subject's own map (closest-subject rule)
        np.testing.assert_allclose(d["identity"][i], coeffs[s], atol=1e-3)  # exact projection
        assert d["identity_residual"][i] < 1e-3
