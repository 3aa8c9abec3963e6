"""Population sampling: paper's polar weights, group membership, DR / C-PCA / No-Aug samplers, CLI."""
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

from digitaltwin_jax.geometry import (
    flipped_faces,
    kmeans_groups,
    make_dr_sampler,
    polar_to_cartesian_weights,
    sample_cpca,
    sample_dr,
    sample_group_members,
    sample_noaug,
    sample_polar_weights,
    sample_population,
)
from digitaltwin_jax.geometry.augment_cli import main as augment_main
from digitaltwin_jax.model.head_model import asset_path

HAVE_LOW = asset_path("ict_head_low.npz").exists() and asset_path("ict_head_full.npz").exists()


def test_polar_weights_distribution():
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    a = np.asarray(jax.jit(jax.vmap(lambda k: sample_polar_weights(k, 5)))(keys), np.float64)
    assert (a >= 0).all()
    r = np.linalg.norm(a, axis=1)
    assert stats.kstest(r, stats.uniform(0.6, 0.7).cdf).pvalue > 1e-3
    # recover the angles: theta_k = arccos(a_k / |a_k .. a_m|), each ~ U[0, pi/2]
    tails = np.sqrt(np.cumsum(a[:, ::-1] ** 2, axis=1)[:, ::-1])
    theta = np.arccos(np.clip(a[:, :4] / tails[:, :4], -1, 1))
    for k in range(4):
        assert stats.kstest(theta[:, k], stats.uniform(0, np.pi / 2).cdf).pvalue > 1e-3
    # closed form for one point
    w = np.asarray(polar_to_cartesian_weights(2.0, np.array([0.3, 0.4])))
    np.testing.assert_allclose(w, 2 * np.array([np.cos(0.3), np.sin(0.3) * np.cos(0.4), np.sin(0.3) * np.sin(0.4)]), rtol=1e-6)


def test_group_members_and_kmeans():
    groups = np.repeat(np.arange(3), [7, 5, 9])
    keys = jax.random.split(jax.random.PRNGKey(1), 200)
    idx = np.asarray(jax.vmap(lambda k: sample_group_members(k, groups, 1, 5))(keys))
    assert (groups[idx] == 1).all()
    assert all(len(set(row)) == 5 for row in idx)
    assert set(idx.ravel()) == set(np.where(groups == 1)[0])
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]], float)
    pts = np.concatenate([c + rng.normal(size=(30, 2)) for c in centers])
    lab = np.asarray(kmeans_groups(pts, 3, jax.random.PRNGKey(2)))
    for g in range(3):
        assert len(set(lab[30 * g: 30 * (g + 1)])) == 1
    assert len(set(lab)) == 3


@pytest.fixture(scope="module")
def low():
    if not HAVE_LOW:
        pytest.skip("head model assets missing")
    from digitaltwin_jax import load_head_model

    m = load_head_model("low")
    pop = sample_population(m, jax.random.PRNGKey(3), num_subjects=60, num_groups=3)
    return m, pop


def test_dr_samples_within_group_and_no_new_flips(low):
    m, pop = low
    sampler = make_dr_sampler(pop, m.vertices, m.faces, anchor=int(m.nose_tip_index))
    out = sample_dr(jax.random.PRNGKey(4), sampler, 1000, chunk=250)
    assert out["vertices"].shape == (1000, m.num_vertices, 3) and np.isfinite(out["vertices"]).all()
    assert (pop.groups[out["members"]] == out["group"][:, None]).all()
    assert all(len(set(r)) == 5 for r in out["members"])
    flips = np.asarray(jax.jit(jax.vmap(lambda v: flipped_faces(v, m.vertices, m.faces)))(out["vertices"]))
    # the identity space itself flips sliver triangles (mostly around the eyes) for most N(0, 1)
    # identities: collect those faces from 2000 random identities; DR sampling must flip no other
    coeffs = np.random.default_rng(7).normal(size=(2000, m.num_identity)).astype(np.float32)
    model_flips = np.zeros(len(m.faces), bool)
    flip_fn = jax.jit(jax.vmap(lambda v: flipped_faces(v, m.vertices, m.faces)))
    for i in range(0, 2000, 250):
        shapes = m.vertices + np.tensordot(coeffs[i:i + 250], m.identity_basis, 1)
        model_flips |= np.asarray(flip_fn(shapes)).any(0)
    print("faces flipped by the identity space itself:", int(model_flips.sum()), "of", len(m.faces))
    bad = flips[:, ~model_flips]
    print("DR samples with other flipped faces:", int(bad.any(1).sum()), "faces:", np.where(~model_flips)[0][bad.any(0)])
    assert bad.sum() == 0


def test_cpca_and_noaug(low):
    m, pop = low
    c = sample_cpca(jax.random.PRNGKey(5), pop, 600, group_weights=[0, 1, 0])
    assert (c["group"] == 1).all()
    members = pop.vertices[pop.groups == 1].reshape((pop.groups == 1).sum(), -1).astype(np.float64)
    mean_sample = c["vertices"].reshape(600, -1).mean(0)
    spread = members.std(0).mean()
    assert np.abs(mean_sample - members.mean(0)).mean() < 0.25 * spread  # N(mu_g, Sigma_g)
    n = sample_noaug(jax.random.PRNGKey(6), pop, 300)
    np.testing.assert_array_equal(n["vertices"], pop.vertices[n["subject"]])
    assert (pop.groups[n["subject"]] == n["group"]).all()
    share = np.bincount(n["group"], minlength=3) / 300
    np.testing.assert_allclose(share, pop.group_sizes() / 60, atol=0.1)


def test_augment_cli_resumable(low, tmp_path):
    m, _ = low
    args = ["--out", str(tmp_path / "aug"), "--num", "30", "--shard-size", "15", "--subjects", "60",
            "--groups", "3", "--no-progress"]
    assert augment_main(args, model=m) == 0
    shards = sorted((tmp_path / "aug").glob("shard_*.npz"))
    assert [s.name for s in shards] == ["shard_00000.npz", "shard_00001.npz"]
    first = np.load(shards[1])["vertices"]
    assert first.shape == (15, m.num_vertices, 3)
    shards[1].unlink()
    mtime = shards[0].stat().st_mtime_ns
    assert augment_main(args, model=m) == 0  # resumes: only the missing shard is drawn, identically
    np.testing.assert_array_equal(np.load(shards[1])["vertices"], first)
    assert shards[0].stat().st_mtime_ns == mtime
    settings = json.loads((tmp_path / "aug" / "manifest.json").read_text())["settings"]
    assert settings["method"] == "dr"
    assert augment_main(args[:-1] + ["--seed", "1", "--no-progress"], model=m) == 2  # other settings refused
    assert not list((tmp_path / "aug").glob(".*tmp"))
