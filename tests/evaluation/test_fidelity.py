"""Fidelity statistics against closed forms, scipy and known ground truth."""
import math

import numpy as np
import pytest
from scipy import stats

from digitaltwin_jax.evaluation.fidelity import (
    fit_embedding_stats,
    frechet_distance,
    mahalanobis,
    mean_interval,
    nearest_distances,
    paired_difference,
    retrieval,
    rotation_angle_deg,
    score_heads,
    shape_distance_matrix,
)


def test_paired_difference_matches_scipy_t_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(2.0, 0.3, 40)
    b = a + rng.normal(-0.1, 0.05, 40)
    d = paired_difference(b, a)
    diff = b - a
    lo, hi = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    assert d.n == 40
    assert d.mean == pytest.approx(diff.mean())
    assert (d.lo, d.hi) == pytest.approx((lo, hi))
    assert d.better and not d.worse
    # NaN pairs are dropped on either side
    b2 = b.copy()
    b2[:5] = np.nan
    assert paired_difference(b2, a).n == 35
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(a, a[:3])


def test_mean_interval_small_samples():
    assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)
    one = mean_interval([1.5])
    assert one.mean == 1.5 and one.lo == -math.inf and one.hi == math.inf


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    # same covariance, shifted mean: the trace term vanishes and the distance is |shift|^2
    assert frechet_distance(x + shift, x) == pytest.approx(float(shift @ shift), rel=1e-6)
    # scaled copy: tr(S + 4S - 2*2S) = tr(S)
    s = np.cov(x, rowvar=False)
    assert frechet_distance(2.0 * (x - x.mean(0)) + x.mean(0), x) == pytest.approx(np.trace(s), rel=1e-6)


def test_embedding_stats_and_mahalanobis():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 4)) * np.array([1.0, 2.0, 0.5, 1.0]) + 3.0
    st = fit_embedding_stats(x)
    assert st.shrinkage < 0.01  # plenty of samples: almost no shrinkage
    cov = np.cov(x, rowvar=False)
    q = rng.normal(size=(5, 4))
    ref = np.sqrt(np.einsum("ni,ij,nj->n", q - x.mean(0), np.linalg.inv(cov), q - x.mean(0)))
    np.testing.assert_allclose(mahalanobis(st, q), ref, rtol=0.02)
    # fewer samples than dimensions: still invertible, finite distances
    few = fit_embedding_stats(rng.normal(size=(10, 50)))
    assert 0.0 < few.shrinkage <= 1.0
    assert np.all(np.isfinite(mahalanobis(few, rng.normal(size=(3, 50)))))
    assert np.isnan(mahalanobis(st, np.full((1, 4), np.nan))[0])


def test_nearest_distances_brute_force():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(30, 5))
    ref = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(a, b), ref)


def test_retrieval_known_answers():
    # persons 0,0,1,1,2,2; item 4's nearest is person 1 (a miss), all others hit
    pid = np.array([0, 0, 1, 1, 2, 2])
    d = np.full((6, 6), 10.0)
    for i, j in ((0, 1), (2, 3), (4, 5)):
        d[i, j] = d[j, i] = 1.0
    d[4, 2] = d[2, 4] = 0.5  # item 4 is closest to item 2 (another person); item 2 too
    np.fill_diagonal(d, 0.0)
    r = retrieval(d, pid)
    assert r.num_queries == 6
    assert r.rank1 == pytest.approx(4 / 6)  # items 2 and 4 miss
    assert r.chance == pytest.approx(1 / 5)
    same = d[[0, 1, 2, 3, 4, 5], [1, 0, 3, 2, 5, 4]].mean()
    diff_mask = (pid[:, None] != pid[None]) & ~np.eye(6, dtype=bool)
    assert r.within_between == pytest.approx(same / d[diff_mask].mean())
    # Wilson interval of 4/6 (closed form)
    z, n, p = 1.959963984540054, 6, 4 / 6
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (r.rank1_lo, r.rank1_hi) == pytest.approx((c - h, c + h))


def test_retrieval_ties_are_half_hits():
    pid = np.array([0, 0, 1])
    d = np.ones((3, 3))
    np.fill_diagonal(d, 0.0)
    r = retrieval(d, pid)  # every item equidistant: item 0's nearest is tied between 1 (same) and 2
    assert r.num_queries == 2 and r.ties == 2 and r.rank1 == pytest.approx(0.5)


def _rot(axis, deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def test_rotation_angle_wraparound():
    assert rotation_angle_deg(_rot([0, 1, 0], 30), np.eye(3)) == pytest.approx(30.0)
    assert rotation_angle_deg(_rot([1, 1, 0], 179.0), np.eye(3)) == pytest.approx(179.0)
    assert rotation_angle_deg(_rot([0, 0, 1], 200.0), np.eye(3)) == pytest.approx(160.0)
    assert rotation_angle_deg(_rot([0, 0, 1], -10), _rot([0, 0, 1], 10)) == pytest.approx(20.0)


def test_shape_distance_matrix_similarity_invariant():
    rng = np.random.default_rng(4)
    h = rng.normal(size=(50, 3)) * 30
    moved = 1.7 * h @ _rot([1, 2, 3], 40).T + np.array([5.0, -3.0, 2.0])
    bumped = h + rng.normal(size=h.shape) * 0.5
    d = shape_distance_matrix(np.stack([h, moved, bumped]))
    assert d[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert d[0, 2] > 0.3 and d[0, 2] == pytest.approx(d[2, 0])


@pytest.fixture(scope="module")
def low():
    from digitaltwin_jax import load_head_model

    return load_head_model("low")


def test_score_heads_known_cases(low):
    """Itself 0; a rigidly moved and scaled copy 0; a copy pushed 1 mm along its normals ~1 mm."""
    from digitaltwin_jax.geometry.mesh import vertex_normals

    v = np.asarray(low.vertices, np.float64)
    moved = 1.05 * v @ _rot([0.2, 1.0, 0.1], 12.0).T + np.array([3.0, -2.0, 7.0])
    n = np.asarray(vertex_normals(v, np.asarray(low.faces)), np.float64)
    pushed = v + n
    preds = np.stack([v, moved, pushed]).astype(np.float32)
    sc = score_heads(low, np.stack([v, v, v]), preds, radii=(95.0,))
    assert sc.armse_mm[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert sc.armse_mm[1, 0] == pytest.approx(0.0, abs=1e-3)
    # the similarity + ICP with scale absorbs part of a uniform offset (a scale change); what is
    # left must be positive and at most the 1 mm displacement
    assert 0.2 < sc.armse_mm[2, 0] <= 1.0
    no_scale = score_heads(low, v[None], pushed[None].astype(np.float32), radii=(95.0,))
    assert no_scale.armse_mm[0, 0] == pytest.approx(sc.armse_mm[2, 0])
    assert np.all(np.isfinite(sc.armse_iod)) and sc.armse_iod[2, 0] > 0
    # without alignment the exact distances see the full 1 mm in both directions
    from digitaltwin_jax.evaluation import armse

    r = armse(pushed, np.asarray(low.faces), v, np.asarray(low.faces), center=v[int(low.nose_tip_index)], radius=95.0)
    assert r.armse == pytest.approx(1.0, abs=0.03)
    nan_pred = preds.copy()
    nan_pred[1, 0, 0] = np.nan
    assert np.isnan(score_heads(low, np.stack([v, v, v]), nan_pred, radii=(95.0,)).armse_mm[1, 0])
    with pytest.raises(ValueError, match="must both be"):
        score_heads(low, v[None], preds)
