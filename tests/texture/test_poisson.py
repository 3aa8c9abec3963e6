"""Poisson blending (Perez 2003) against closed forms and a brute-force dense reference."""
import numpy as np
import pytest

from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend

DIRECT = PoissonConfig(method="direct")


def test_ramp_with_one_dirichlet_side_is_the_ramp_shifted_to_the_boundary():
    # Omega = columns >= 10, touching the image border on three sides (zero flux there): the only
    # boundary is column 9 where f = target = 0.7, so f keeps the source slope and meets 0.7 there
    h, w = 20, 30
    x = np.broadcast_to(np.arange(w, dtype=np.float32), (h, w))
    src = 0.1 * x
    tgt = np.full((h, w), 0.7, np.float32)
    mask = np.zeros((h, w), bool)
    mask[:, 10:] = True
    expected = 0.7 + 0.1 * (x - 9)
    for cfg in (DIRECT, PoissonConfig(method="multigrid", direct_max=50, band=2)):
        f = poisson_blend(src, tgt, mask, config=cfg)
        np.testing.assert_allclose(f[mask], expected[mask], atol=1e-4)
        np.testing.assert_array_equal(f[~mask], tgt[~mask])


def test_closed_region_constant_offsets_and_linear_fields():
    h, w = 24, 26
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mask = np.zeros((h, w), bool)
    mask[4:20, 5:22] = True
    mask[10:13, 8:11] = False  # a hole: its rim is boundary too
    # source = target + constant -> the offset is removed, f = target
    tgt = 0.3 + 0.01 * xx - 0.02 * yy
    f = poisson_blend(tgt + 0.25, tgt, mask, config=DIRECT)
    np.testing.assert_allclose(f, tgt, atol=1e-5)
    # linear source, constant target: linear guidance is curl-free and harmonic -> f = target
    f = poisson_blend(0.05 * xx, np.full((h, w), 0.6, np.float32), mask, config=DIRECT)
    np.testing.assert_allclose(f[mask], 0.6, atol=1e-5)


def _bruteforce(src, tgt, mask, domain, valid, pairs):
    """Obviously correct: loop over texels, build the dense Perez system, np.linalg.solve."""
    h, w = mask.shape
    unknown = [(r, c) for r in range(h) for c in range(w) if mask[r, c] and domain[r, c]]
    index = {p: k for k, p in enumerate(unknown)}
    nbrs = {p: [] for p in unknown}
    for r, c in unknown:
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            q = (r + dr, c + dc)
            if 0 <= q[0] < h and 0 <= q[1] < w and domain[q]:
                nbrs[(r, c)].append(q)
    for a, b in pairs:
        pa, pb = divmod(int(a), w), divmod(int(b), w)
        if pa in nbrs and domain[pb]:
            nbrs[pa].append(pb)
        if pb in nbrs and domain[pa]:
            nbrs[pb].append(pa)
    n, C = len(unknown), src.shape[2]
    A = np.zeros((n, n))
    b = np.zeros((n, C))
    for p in unknown:
        i = index[p]
        for q in nbrs[p]:
            A[i, i] += 1
            v = src[p] - src[q] if (valid[p] and valid[q]) else tgt[p] - tgt[q]
            b[i] += v
            if q in index:
                A[i, index[q]] -= 1
            else:
                b[i] += tgt[q]
    x = np.linalg.solve(A, b)
    out = tgt.astype(np.float64).copy()
    for p in unknown:
        out[p] = x[index[p]]
    return out


def test_matches_bruteforce_with_chart_borders_seams_and_invalid_source():
    rng = np.random.default_rng(0)
    h, w = 14, 17
    src = rng.random((h, w, 2)).astype(np.float32)
    tgt = rng.random((h, w, 2)).astype(np.float32)
    domain = np.ones((h, w), bool)
    domain[:, 8] = False  # a gap between two charts
    domain[0, :3] = False
    mask = np.zeros((h, w), bool)
    mask[2:12, 2:8] = True  # touches the chart border at column 7 (zero flux there)
    mask[3:11, 9:15] = True
    valid = np.ones((h, w), bool)
    valid[5, 3:6] = False
    # two seam pairs across the gap (column 7 <-> column 9)
    pairs = np.array([[4 * w + 7, 4 * w + 9], [6 * w + 7, 7 * w + 9]])
    ref = _bruteforce(src, tgt, mask, domain, valid, pairs)
    for cfg in (DIRECT, PoissonConfig(method="multigrid", direct_max=20, band=2, tol=1e-9)):
        f = poisson_blend(src, tgt, mask, domain=domain, source_valid=valid, seam_pairs=pairs, config=cfg)
        np.testing.assert_allclose(f, ref, atol=2e-5)


def test_nothing_leaks_across_chart_borders():
    rng = np.random.default_rng(1)
    h, w = 16, 20
    src = rng.random((h, w)).astype(np.float32)
    tgt = rng.random((h, w)).astype(np.float32)
    domain = np.ones((h, w), bool)
    domain[:, 10] = False
    mask = np.zeros((h, w), bool)
    mask[3:13, 4:10] = True  # reaches the chart border
    f1 = poisson_blend(src, tgt, mask, domain=domain, config=DIRECT)
    tgt2 = tgt.copy()
    tgt2[:, 10] += 5.0  # texels outside every chart
    tgt2[:, 11:] -= 3.0  # the other chart
    f2 = poisson_blend(src, tgt2, mask, domain=domain, config=DIRECT)
    np.testing.assert_allclose(f1[mask], f2[mask], atol=1e-6)


def test_region_without_boundary_keeps_source_gradients():
    rng = np.random.default_rng(2)
    src = rng.random((10, 12)).astype(np.float32)
    tgt = np.zeros((10, 12), np.float32)
    domain = np.zeros((10, 12), bool)
    domain[2:8, 3:9] = True
    f = poisson_blend(src, tgt, domain, domain=domain, config=DIRECT)  # a whole chart
    d = f[domain] - src[domain]
    np.testing.assert_allclose(d, d[0], atol=1e-5)  # source up to a constant
    assert np.isfinite(f).all()


def test_multigrid_and_twolevel_against_direct_on_a_rough_problem():
    rng = np.random.default_rng(3)
    n = 160
    yy, xx = np.mgrid[0:n, 0:n]
    src = np.stack([np.sin(xx / 4.0) + 0.3 * rng.random((n, n)), np.cos(yy / 9.0)], -1).astype(np.float32)
    tgt = np.stack([0.5 + 0.2 * np.sin(yy / 30.0), 0.3 + xx / n], -1).astype(np.float32)
    mask = ((xx - 78) ** 2 / 60**2 + (yy - 83) ** 2 / 50**2) < 1
    mask &= ~(((xx - 60) ** 2 / 15**2 + (yy - 70) ** 2 / 3**2) < 1)
    ref = poisson_blend(src, tgt, mask, config=DIRECT)
    mg, info = poisson_blend(src, tgt, mask, config=PoissonConfig(method="multigrid", direct_max=800),
                             return_info=True)
    assert info["method"] == "multigrid" and info["residual"] <= 1e-4
    assert np.abs(mg - ref).max() < 2e-3


def test_twolevel_is_close_to_exact_on_texture_like_data():
    # skin-like source: smooth shading + fine noise (std 0.05); bank-like target
    rng = np.random.default_rng(4)
    n = 160
    yy, xx = np.mgrid[0:n, 0:n]
    noise = rng.standard_normal((n, n, 3)).astype(np.float32)
    noise = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3.0
    src = (0.6 + 0.1 * np.sin(xx / 15.0)[..., None] + 0.05 * noise).astype(np.float32)
    tgt = np.stack([0.5 + 0.1 * np.sin(yy / 30.0), 0.3 + 0.2 * xx / n, 0.4 + 0 * xx], -1).astype(np.float32)
    mask = ((xx - 78) ** 2 / 60**2 + (yy - 83) ** 2 / 50**2) < 1
    ref = poisson_blend(src, tgt, mask, config=DIRECT)
    tl, info = poisson_blend(src, tgt, mask, config=PoissonConfig(method="twolevel"), return_info=True)
    assert info["method"].startswith("twolevel")
    err = np.abs(tl - ref)
    assert err[mask].mean() < 3e-3 and err.max() < 0.02  # < 1 and < 5 levels of 255
    np.testing.assert_array_equal(tl[~mask], tgt[~mask])


def test_bad_inputs():
    a = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="same"):
        poisson_blend(a, np.zeros((4, 5, 3)), np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        poisson_blend(a, a, np.ones((3, 4), bool))
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        poisson_blend(bad, a, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="method"):
        poisson_blend(a, a, np.ones((4, 4), bool), config=PoissonConfig(method="fft"))
    out = poisson_blend(a + 1, a, np.zeros((4, 4), bool))
    np.testing.assert_array_equal(out, a)
