"""Multi-view fit: exact recovery of a known head from noise-free landmarks of three views (weak
priors), the Jacobian against finite differences, and errors naming the view."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax.camera import frontal_rotation
from digitaltwin_jax.fitting import FitConfig
from digitaltwin_jax.multiview import MultiFitConfig, fit_views
from digitaltwin_jax.multiview.fit import residual_fn
from digitaltwin_jax.synth.scene import euler_to_matrix

K_ID = 20
SIZE = (480, 640)
# Weak priors, stated explicitly: omega_r = 1e-8 scales every prior (expression, focal, rotation,
# identity) to ~1e-8 of the paper's; fixed landmark vertices (no sliding jaw) and unit jaw weights,
# so that noise-free landmarks of the true head are matched exactly by the true parameters.
WEAK = FitConfig(omega_r=1e-8, num_identity=K_ID, sliding_contour=False, jaw_weight=1.0, jaw_tangent_weight=1.0)



def _views(model, fs_per_view, yaws=(0.0, -30.0, 30.0), seed=0):
    """Noise-free landmarks of a known head (numpy pinhole, independent of the fit's code)."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(size=K_ID)
    names = list(model.expression_names)
    neutral = np.asarray(model.vertices, np.float64) + np.tensordot(alpha, np.asarray(model.identity_basis[:K_ID], np.float64), axes=1)
    lms, betas, ts = [], [], []
    for j, y in enumerate(yaws):
        beta = np.zeros(len(names))
        beta[names.index("jawOpen")] = 0.2 + 0.1 * j
        beta[names.index("mouthSmile_L")] = 0.3
        v = neutral + np.tensordot(beta, np.asarray(model.expression_basis, np.float64), axes=1)
        R = np.diag([1.0, -1.0, -1.0]) @ euler_to_matrix(3.0 * j - 2.0, y, 5.0 - 2.0 * j)
        t = np.array([10.0 * j, -5.0, 600.0 + 20.0 * j])
        p = v[np.asarray(model.landmark_indices)] @ R.T + t
        f = fs_per_view[j] * max(SIZE)
        lms.append(f * p[:, :2] / p[:, 2:3] + np.array([SIZE[1] / 2.0, SIZE[0] / 2.0]))
        betas.append(beta)
        ts.append(t)
    return np.array(lms), alpha, neutral, np.array(betas), np.array(ts)


def test_exact_recovery_shared_camera(model):
    lms, alpha, neutral, betas, ts = _views(model, [1.3, 1.3, 1.3])
    cfg = MultiFitConfig(fit=WEAK, num_iterations=15, fit_identity=True, init_single_fit=False,
                         fit_corrective=False)  # the shared field has its own tests below
    r = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0])
    assert r.success
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-4)
    np.testing.assert_allclose(r.focal_scale, 1.3, atol=1e-6)
    np.testing.assert_allclose(r.beta, betas, atol=1e-4)
    np.testing.assert_allclose(r.t, ts, atol=1e-3)
    assert np.abs(r.neutral - neutral).max() < 1e-3  # mm
    assert np.nanmax(r.reprojection_errors) < 1e-3  # px
    assert r.energy[-1] < 1e-4 * r.energy[0]
    # the posed vertices and K reproduce the input landmarks (numpy projection)
    p = np.einsum("vij,vnj->vni", np.eye(3)[None], r.vertices_camera[:, np.asarray(model.landmark_indices)])
    px = np.einsum("vij,vnj->vni", r.intrinsics, p)
    np.testing.assert_allclose(px[..., :2] / px[..., 2:], lms, atol=1e-3)


def test_exact_recovery_free_intrinsics(model):
    lms, alpha, _, _, _ = _views(model, [1.0, 1.6, 2.2], seed=1)
    cfg = MultiFitConfig(fit=WEAK, num_iterations=20, fit_identity=True, init_single_fit=False, fit_corrective=False)
    r = fit_views(model, lms, SIZE, config=cfg)  # every view its own focal scale
    np.testing.assert_allclose(r.focal_scale, [1.0, 1.6, 2.2], rtol=1e-4)
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-3)


@pytest.mark.parametrize("with_field", [False, True])
def test_jacobian_matches_finite_differences(model, with_field):
    rng = np.random.default_rng(3)
    nv, k, m = 2, 4, model.expression_basis.shape[0]
    with jax.enable_x64(True):
        d = {
            "s_base": rng.normal(size=(nv, 68, 3)) * 40.0,
            "s_id": rng.normal(size=(nv, k, 68, 3)),
            "s_ex": rng.normal(size=(nv, m, 68, 3)),
            "lm": rng.uniform(100, 500, size=(nv, 68, 2)),
            "mask": rng.uniform(0.5, 1.0, size=(nv, 68)),
            "frames": np.repeat(np.eye(2)[None, None], 68, 1).repeat(nv, 0),
            "scale": np.array([0.5, 0.7]),
            "focal": np.array([640.0, 512.0]),
            "principal": np.array([[320.0, 240.0], [256.0, 256.0]]),
            "q_ref": np.array([[0.1, 0.99, 0.05, 0.0], [0.0, 0.97, -0.2, 0.1]]),
            "q0": np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.1, 0.0]]),
            "cam": np.array([0, 0]),
            "cam_weight": np.array([2.0]),
            "sigma": np.full(m, 0.05),
        }
        d = {kk: jnp.asarray(v) for kk, v in d.items()}
        x = {"alpha": rng.normal(size=k), "beta": rng.uniform(0, 1, size=(nv, m)), "w": rng.normal(size=(nv, 3)) * 0.1,
             "t": np.array([[5.0, -3.0, 500.0], [-8.0, 2.0, 650.0]]), "log_fs": np.array([0.2])}
        if with_field:  # the shared corrective field at 84 samples (52 fixed + 16 jaw per view)
            from digitaltwin_jax.fitting import prepare
            from digitaltwin_jax.multiview.fit import _choose_slots, _sample_table

            problem = prepare(model, FitConfig(), corrective=True)
            jaw = np.array([j for j in range(17) if j != 8])
            slot, idx, sw = _choose_slots(_sample_table(problem), rng.integers(0, 4, size=(nv, 17)), jaw, 84, True)
            d.update(slot=jnp.asarray(slot), slot_idx=jnp.asarray(idx), slot_w=jnp.asarray(sw),
                     slot_chol=corr_gram(idx, sw, problem.corrective), corrective=problem.corrective)
            x["offsets"] = rng.normal(size=(84, 3))
        flat, unravel = jax.flatten_util.ravel_pytree({kk: jnp.asarray(v) for kk, v in x.items()})
        w = jnp.asarray([1.0, 2.0, 3.0, 4.0, 1.0, 5.0])
        f = lambda z: residual_fn(unravel(z), d, w)
        J = np.asarray(jax.jacfwd(f)(flat))
        h = 1e-6
        cols = rng.choice(flat.shape[0], size=40, replace=False)
        for c in cols:
            e = np.zeros(flat.shape[0])
            e[c] = h
            fd = (np.asarray(f(flat + e)) - np.asarray(f(flat - e))) / (2 * h)
            np.testing.assert_allclose(J[:, c], fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_errors_name_the_view(model):
    lms, *_ = _views(model, [1.0, 1.0, 1.0])
    bad = lms.copy()
    bad[1] = np.stack([np.linspace(0, 100, 68), np.linspace(0, 100, 68)], axis=1)  # collinear
    with pytest.raises(ValueError, match="view 1"):
        fit_views(model, bad, SIZE, config=MultiFitConfig(fit=WEAK, init_single_fit=False))
    with pytest.raises(ValueError, match="camera_groups"):
        fit_views(model, lms, SIZE, camera_groups=[0, 1])
    with pytest.raises(ValueError, match=r"\(V, 68, 2\)"):
        fit_views(model, lms[0], SIZE)


def _uniform_laplacian(n, faces):
    """``I - D^{-1} A`` of the mesh graph (scipy, written here independently of geometry.laplacian)."""
    import scipy.sparse as sp

    f = np.asarray(faces)
    f = f.reshape(-1, f.shape[-1])
    i = np.concatenate([f[:, a] for a in range(f.shape[1])])
    j = np.concatenate([f[:, (a + 1) % f.shape[1]] for a in range(f.shape[1])])
    adj = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return sp.eye(n) - sp.diags(1.0 / np.maximum(deg, 1.0)) @ adj


def test_shared_field_residual_is_the_constrained_minimum(model):
    """The corrective part of the residual at the views' samples, minimised over the padding rows,
    equals min ||L dP||^2 + lambda ||dP||^2 subject to dP = d at the used samples (scipy KKT solve)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    from digitaltwin_jax.fitting import prepare
    from digitaltwin_jax.multiview.fit import _choose_slots, _sample_table

    fc = FitConfig()
    problem = prepare(model, fc, corrective=True)
    table = _sample_table(problem)
    jaw = np.array([j for j in range(17) if j != 8])
    rng = np.random.default_rng(5)
    contour = rng.integers(0, 3, size=(3, 17)).astype(np.int32)  # three views, some jaw points shared
    n_slots = 52 + 16 * 3
    slot, idx, w = _choose_slots(table, contour, jaw, n_slots, True)
    used = np.unique(slot)
    assert idx.shape == (n_slots, 3) and used.size < n_slots  # duplicates merged, padding present
    handles = np.asarray(problem.handles)
    nvert = model.num_vertices
    # explicit sampling matrix of the used samples over all vertices, and the KKT minimum
    s_mat = sp.csr_matrix((w[used].ravel(), (np.repeat(np.arange(used.size), 3), handles[idx[used]].ravel())),
                          shape=(used.size, nvert))
    lap = _uniform_laplacian(nvert, model.faces)
    a_mat = (lap.T @ lap + fc.lambda_delta * sp.eye(nvert)).tocsc()
    ainv_st = spl.splu(a_mat).solve(s_mat.T.toarray())
    gram = s_mat @ ainv_st
    d_used = rng.normal(size=(used.size, 3))
    expected = float(np.sum(d_used * np.linalg.solve(gram, d_used)))
    # residual_fn's corrective part is linear in the offsets: minimise over the padding rows by least squares
    with jax.enable_x64(True):
        cc = problem.corrective
        chol = np.asarray(corr_gram(idx, w, cc))
    linv = np.linalg.inv(chol)  # residual = linv @ offsets per coordinate
    pad = np.setdiff1d(np.arange(n_slots), used)
    got = 0.0
    for c in range(3):
        rhs = linv[:, used] @ d_used[:, c]
        z, *_ = np.linalg.lstsq(linv[:, pad], -rhs, rcond=None)
        got += float(np.sum((rhs + linv[:, pad] @ z) ** 2))
    np.testing.assert_allclose(got, expected, rtol=2e-4)


def corr_gram(idx, w, cc):
    from digitaltwin_jax.energies.corrective import gram_cholesky

    return gram_cholesky(jnp.asarray(idx), jnp.asarray(w), cc)


def test_shared_field_explains_landmarks_the_model_cannot(model):
    """A head with a smooth local change outside the model (a field on the mean head), seen in three
    views without noise: with the shared corrective field (weak priors) the fit reproduces every
    landmark and the landmarks' 3D shape up to a similarity; without it, it cannot."""
    rng = np.random.default_rng(2)
    verts = np.asarray(model.vertices, np.float64)
    li = np.asarray(model.landmark_indices)
    field = np.zeros_like(verts)
    for c in (li[30], li[48], li[8]):  # nose tip, mouth corner, chin: 4 mm bumps, 25 mm wide
        bump = np.exp(-np.sum((verts - verts[c]) ** 2, axis=1) / (2 * 25.0 ** 2))
        field += bump[:, None] * rng.normal(size=3) / np.sqrt(3) * 4.0
    head = verts + field
    lms = []
    for j, y in enumerate((0.0, -30.0, 30.0)):
        R = np.diag([1.0, -1.0, -1.0]) @ euler_to_matrix(3.0 * j - 2.0, y, 5.0 - 2.0 * j)
        p = head[li] @ R.T + np.array([10.0 * j, -5.0, 600.0])
        lms.append(1.2 * max(SIZE) * p[:, :2] / p[:, 2:3] + np.array([SIZE[1] / 2.0, SIZE[0] / 2.0]))
    lms = np.array(lms)
    weak = dataclasses.replace(WEAK, omega_c=1e-4, expression_sigma=1e-6)  # neutral faces: no expression
    cfg = MultiFitConfig(fit=weak, num_iterations=25, init_single_fit=False, fit_corrective=True)
    r = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0])
    off = fit_views(model, lms, SIZE, config=dataclasses.replace(cfg, fit_corrective=False), camera_groups=[0, 0, 0])
    assert np.nanmax(off.reprojection_errors) > 1.0  # px: the model alone cannot explain the bumps
    assert np.nanmax(r.reprojection_errors) < 0.05
    np.testing.assert_allclose(r.neutral, verts + r.delta_p, atol=1e-9)
    # the fitted 3D landmarks match the true ones up to a similarity (Umeyama, numpy)
    a, b = r.neutral[li], head[li]
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, s, vt = np.linalg.svd(b0.T @ a0)
    dcorr = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ dcorr @ vt
    scale = np.trace(np.diag(s) @ dcorr) / np.sum(a0 ** 2)
    err = np.linalg.norm(scale * a0 @ rot.T - b0, axis=1)
    assert err.max() < 0.05  # mm
