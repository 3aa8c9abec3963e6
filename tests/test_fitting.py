"""Tests of the non-rigid fitting (paper section 3.4): synthetic ground truth, the structured solve
against a plain dense Gauss-Newton step, custom terms, batching and bad input."""
import dataclasses

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax import fitting as F
from digitaltwin_jax.fitting.terms import bind
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.model.head_model import HeadModel, asset_path

needs_low = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")


# ------------------------------------------------------------------------------------ helpers


def _rot(yaw, pitch=0.0, roll=0.0):
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return np.diag([1.0, -1.0, -1.0]) @ rz @ rx @ ry  # head frame -> OpenCV camera (frontal at 0)


def _project(points, R, t, f, c):
    """Plain OpenCV projection (the independent reference)."""
    px = cv2.projectPoints(points.astype(np.float64), cv2.Rodrigues(R)[0], t, np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1]]), None)[0]
    return px.reshape(-1, 2)


def _rotation_error_deg(q, R):
    Rq = cv2.Rodrigues(np.zeros(3))[0]
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    Rq = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return np.rad2deg(np.linalg.norm(cv2.Rodrigues(Rq @ R.T)[0]))


def _synthetic_faces(model, n, seed, *, noise, expression=True, hw=(480, 640)):
    """Random identity (N(0,1)), expression (3 blendshapes, weights U(0, 0.5)), yaw +-40, pitch and roll
    +-20 degrees, focal 0.7..1.5 x default; the face spans ~40 % of the image height.  Jaw landmarks
    are the silhouette points of the true mesh (densely sampled horizontal sections)."""
    rng = np.random.default_rng(seed)
    lines = lmk.contour_lines(
        model.vertices, model.faces, model.landmark_indices, model.contour_candidates, model.outer_surface_mask,
        max_points=64,
    )
    h, w = hw
    out = []
    for _ in range(n):
        alpha = rng.standard_normal(model.num_identity)
        beta = np.zeros(model.num_expressions)
        if expression:
            k = rng.choice(model.num_expressions, 3, replace=False)
            beta[k] = rng.uniform(0.0, 0.5, 3)
        ident = model.vertices + np.tensordot(alpha, model.identity_basis, 1)
        verts = ident + np.tensordot(beta, model.expression_basis, 1)
        R = _rot(rng.uniform(-40, 40), rng.uniform(-20, 20), rng.uniform(-20, 20))
        fs = rng.uniform(0.7, 1.5)
        f = fs * max(h, w)
        t = np.array([rng.uniform(-20, 20), rng.uniform(-20, 20), f * 160.0 / (0.4 * h)])
        pts = np.sum(verts[lines.indices] * lines.weights[..., None], axis=2)  # (17, K, 3)
        # silhouette point of each section: outermost in the image along the projected head x axis
        lm3 = verts[model.landmark_indices].copy()
        for j in range(17):
            if j == 8:
                continue
            side = -1.0 if j < 8 else 1.0
            px = _project(pts[j], R, t, f, (w / 2, h / 2))
            axis = _project(pts[j, :1] + [side * 10.0, 0, 0], R, t, f, (w / 2, h / 2)) - px[:1]
            lm3[j] = pts[j, np.argmax(px @ axis[0])]
        clean = _project(lm3, R, t, f, (w / 2, h / 2))
        out.append(dict(alpha=alpha, beta=beta, identity=ident, verts=verts, R=R, t=t, fs=fs, clean=clean,
                        lm=clean + noise * rng.standard_normal(clean.shape), hw=hw))
    return out


def _icosphere(level=2, radius=80.0):
    t = (1 + 5**0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6],
         [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
         [8, 6, 7], [9, 8, 1]]
    v = [np.array(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(level):
        cache, nf = {}, []
        for a, b, c in f:
            mids = []
            for i, j in ((a, b), (b, c), (c, a)):
                key = (min(i, j), max(i, j))
                if key not in cache:
                    m = v[i] + v[j]
                    v.append(m / np.linalg.norm(m))
                    cache[key] = len(v) - 1
                mids.append(cache[key])
            ab, bc, ca = mids
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = nf
    return np.array(v) * radius, np.array(f, np.int32)


@pytest.fixture(scope="module")
def tiny_model():
    """A 162-vertex sphere 'head' with random smooth bases: small enough for a dense reference."""
    v, f = _icosphere(2)
    v = v * np.array([0.8, 1.0, 0.9])
    rng = np.random.default_rng(0)
    n = len(v)
    front = np.flatnonzero(v[:, 2] > 5.0)
    lm = front[np.argsort(-v[front, 2])][:68]
    lm = lm[np.lexsort((v[lm, 0], -v[lm, 1]))]  # arbitrary but fixed order
    left, right = np.flatnonzero((v[:, 0] > 40) & (v[:, 2] > 0)), np.flatnonzero((v[:, 0] < -40) & (v[:, 2] > 0))
    lm[36], lm[45] = right[np.argmax(v[right, 1])], left[np.argmax(v[left, 1])]
    lm[8] = np.argmin(np.where(v[:, 2] > 0, v[:, 1], np.inf))
    lm = np.array(list(dict.fromkeys(lm.tolist())) + [i for i in front if i not in lm])[:68]

    def smooth_field(k):
        c = rng.normal(size=(k, 4, 3))
        x = v / 80.0
        feats = np.stack([np.ones(n), x[:, 0], x[:, 1], x[:, 2]], axis=1)
        return np.einsum("vf,kfc->kvc", feats, c) * 3.0

    return HeadModel(
        vertices=v.astype(np.float32), faces=f, uvs=np.zeros((n, 2), np.float32), uv_faces=f,
        identity_basis=smooth_field(5).astype(np.float32), expression_basis=smooth_field(4).astype(np.float32),
        landmark_indices=lm.astype(np.int32), eval_landmark_indices=lm[:7].astype(np.int32),
        face_weights=np.ones(n, np.float32), face_mask=np.ones(n, bool), eye_mask=np.zeros(n, bool),
        outer_surface_mask=np.ones(n, bool), expression_names=("e0", "e1", "e2", "e3"),
        contour_candidates=(tuple(right.tolist()), tuple(left.tolist())), nose_tip_index=int(lm[30]), resolution="low",
    )


# --------------------------------------------------------------- structured solve vs dense GN


def _uniform_laplacian(n, faces):
    nb = [set() for _ in range(n)]
    for tri in faces:
        for a in tri:
            nb[a].update(b for b in tri if b != a)
    L = np.eye(n)
    for i in range(n):
        for j in nb[i]:
            L[i, j] -= 1.0 / len(nb[i])
    return L


def test_structured_step_equals_dense_gauss_newton_step(tiny_model):
    """One iteration of fit() (deltaP eliminated) == one plain dense GN step over all 3V + 12 unknowns."""
    m = tiny_model
    # (lambda_f large: f_s and t_z are nearly interchangeable, and that valley would amplify round-off)
    cfg = F.FitConfig(
        num_iterations=1, damping=0.0, beta_bounds=(-10.0, 10.0), sliding_contour=False, jaw_weight=1.0, lambda_f=500.0,
        jaw_tangent_weight=1.0,
    )
    R, t, fs, h, w = _rot(15, 5, -5), np.array([5.0, -3.0, 600.0]), 1.1, 480, 640
    beta_true = np.array([0.3, 0.0, 0.2, 0.1])
    verts = m.vertices + np.tensordot(beta_true, m.expression_basis, 1)
    lm2d = _project(verts[m.landmark_indices], R, t, fs * 640, (320, 240)) + np.random.default_rng(1).normal(0, 1, (68, 2))
    res = F.fit(m, lm2d, (h, w), config=cfg)
    assert res.step_sizes[0] == 1.0

    q0, t0 = F.initial_pose(m, lm2d, (h, w), config=cfg)
    V, M = m.num_vertices, m.num_expressions
    L = _uniform_laplacian(V, m.faces)
    scale = 100.0 / np.linalg.norm(lm2d[36] - lm2d[45])
    with jax.enable_x64(True):
        B = jnp.asarray(m.expression_basis, jnp.float64)
        P = jnp.asarray(m.vertices, jnp.float64)
        Lj = jnp.asarray(L)
        qc0 = jnp.asarray(q0)

        def unpack(x):
            return x[:M], x[M : M + 3 * V].reshape(V, 3), x[M + 3 * V : M + 3 * V + 3], x[-5:-1], x[-1]

        def residual(x):
            beta, dp, tt, q, f_s = unpack(x)
            qn = q / jnp.linalg.norm(q)
            w_, x_, y_, z_ = qn
            Rq = jnp.array([[1 - 2 * (y_ * y_ + z_ * z_), 2 * (x_ * y_ - w_ * z_), 2 * (x_ * z_ + w_ * y_)],
                            [2 * (x_ * y_ + w_ * z_), 1 - 2 * (x_ * x_ + z_ * z_), 2 * (y_ * z_ - w_ * x_)],
                            [2 * (x_ * z_ - w_ * y_), 2 * (y_ * z_ + w_ * x_), 1 - 2 * (x_ * x_ + y_ * y_)]])
            pf = P + jnp.tensordot(beta, B, 1) + dp
            pc = pf[m.landmark_indices] @ Rq.T + tt
            px = f_s * 640.0 * pc[:, :2] / pc[:, 2:] + jnp.array([320.0, 240.0])
            r_l = (scale * (px - lm2d)).ravel()
            bb = jnp.tensordot(beta, B, 1)  # beta^{t-1} = 0 in the first iteration
            r_c = jnp.sqrt(cfg.omega_c) * jnp.concatenate([(Lj @ (bb + dp)).ravel(), jnp.sqrt(cfg.lambda_delta) * dp.ravel()])
            r_e = jnp.sqrt(cfg.omega_r) * beta / cfg.expression_sigma
            r_f = jnp.sqrt(cfg.omega_r * cfg.lambda_f) * jnp.log(f_s)[None]
            q0n = qc0 / jnp.linalg.norm(qc0)
            rel_w = q0n @ qn
            rel_v = q0n[0] * qn[1:] - qn[0] * q0n[1:] - jnp.cross(q0n[1:], qn[1:])
            r_q = jnp.sqrt(cfg.omega_r * cfg.lambda_q) * jnp.sign(rel_w) * rel_v
            r_g = (q @ q - 1.0)[None]
            return jnp.concatenate([r_l, r_c, r_e, r_f, r_q, r_g])

        x0 = jnp.concatenate([jnp.zeros(M), jnp.zeros(3 * V), jnp.asarray(t0), qc0, jnp.ones(1)])
        J = jax.jacfwd(residual)(x0)  # eager: one dispatch per primitive, no compile
        r = residual(x0)
        x1 = x0 - jnp.linalg.solve(J.T @ J, J.T @ r)
        beta, dp, tt, q, f_s = (np.asarray(a) for a in unpack(x1))
    q = q / np.linalg.norm(q) * np.sign(q[0])
    np.testing.assert_allclose(res.params.beta, beta, atol=2e-4)
    np.testing.assert_allclose(res.params.t, tt, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(res.params.q, q, atol=2e-6)
    assert float(res.params.f_s) == pytest.approx(float(f_s), rel=2e-5)
    np.testing.assert_allclose(res.params.delta_p, dp, atol=2e-4)
    assert np.abs(dp).max() > 1e-2  # the corrective field is really used


def test_term_jacobians_match_jacfwd_and_finite_differences(tiny_model):
    """The structured normal-equation blocks equal J^T J, J^T r of jax.jacfwd, and the landmark
    Jacobian equals central finite differences (float64)."""
    m = tiny_model
    cfg = F.FitConfig(fit_identity=True)
    problem = F.prepare(m, cfg)
    lm2d = _project(m.vertices[m.landmark_indices], _rot(-20, 10), np.array([0, 0, 600.0]), 640, (320, 240))
    rng = np.random.default_rng(3)
    names_seen = {}
    fns = tuple(bind(t) for t in F.default_terms(cfg))

    def compute(v0, data):
        v, data = F._relinearize(v0, data, 0, fns=fns)
        v = jax.tree_util.tree_map(lambda a, n: a + 0.05 * n, v, noise)
        z, unravel = jax.flatten_util.ravel_pytree(v)
        out = {}
        for key, term in (("l", F.landmark_term), ("c", F.corrective_term)):
            e, g, blocks = term.normal_equations(v, data)
            names_seen[key] = [(b[0], b[1]) for b in blocks]
            J = jax.jacfwd(lambda z: term(unravel(z), data))(z)
            out[key] = (J, term(v, data), e, jax.flatten_util.ravel_pytree(g)[0], [b[2] for b in blocks])
        f = lambda z: F.landmark_term(unravel(z), data)  # noqa: E731
        steps = jnp.eye(z.size) * 1e-6
        fd = (jax.vmap(f)(z + steps) - jax.vmap(f)(z - steps)).T / 2e-6
        return z, out, fd

    with jax.enable_x64(True):
        per_face, v0, _ = F._face_inputs(m, problem, cfg, lm2d, (480, 640), None, None)
        data = F._to_f64(F.FitData(**per_face, **F._shared_data(problem, cfg, m.num_expressions), term_data={}, term_constants={}))
        v0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a) + 0.05 * rng.standard_normal(np.shape(a)), F._to_f64(v0))
        noise = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.standard_normal(np.shape(a))), v0)
        z, out, fd = jax.jit(compute)(v0, data)
    v_sizes = np.cumsum([0] + [int(np.size(a)) for a in jax.tree_util.tree_leaves(v0)])
    names = [f.name for f in dataclasses.fields(F.FitVariables)]

    def cols(grp):
        return np.concatenate([np.arange(v_sizes[names.index(n)], v_sizes[names.index(n) + 1]) for n in grp])

    for key in ("l", "c"):
        J, r, e, g, blks = (np.asarray(a) if not isinstance(a, list) else a for a in out[key])
        H = np.zeros((z.size, z.size))
        for (rows_l, cols_l), b in zip(names_seen[key], blks):
            H[np.ix_(cols(rows_l), cols(cols_l))] += np.asarray(b)
            if rows_l != cols_l:
                H[np.ix_(cols(cols_l), cols(rows_l))] += np.asarray(b).T
        np.testing.assert_allclose(H, J.T @ J, atol=1e-9 * np.abs(J.T @ J).max())
        np.testing.assert_allclose(g, J.T @ r, atol=1e-9 * np.abs(J.T @ r).max())
        assert float(e) == pytest.approx(float(r @ r), rel=1e-12)
    J_l = np.asarray(out["l"][0])
    np.testing.assert_allclose(J_l, np.asarray(fd), atol=1e-5 * np.abs(fd).max())


# ------------------------------------------------------------------ input checks and terms


def test_bad_input_raises(tiny_model):
    m = tiny_model
    lm = _project(m.vertices[m.landmark_indices], _rot(0), np.array([0, 0, 600.0]), 640, (320, 240))
    line = np.stack([np.linspace(100, 300, 68), np.linspace(50, 250, 68)], axis=1)
    with pytest.raises(ValueError, match="collinear"):
        F.fit(m, line, (480, 640))
    with pytest.raises(ValueError, match="collinear"):
        F.fit(m, np.ones((68, 2)) * 100.0, (480, 640))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        F.fit(m, lm[:60], (480, 640))
    few = np.full((68, 2), np.nan)
    few[:4] = lm[:4]
    with pytest.raises(ValueError, match="at least 6"):
        F.fit(m, few, (480, 640))
    with pytest.raises(ValueError, match="image_size"):
        F.fit(m, lm, (0, 640))
    with pytest.raises(ValueError, match="shape"):
        F.fit(m, lm, (480, 640), shape=np.zeros((10, 3)))
    with pytest.raises(ValueError):
        F.FitConfig(omega_c=-1.0)
    with pytest.raises(ValueError):
        F.FitConfig(beta_bounds=(1.0, 0.0))


def _jaw_open_target(v, data):
    """A user term: pull blendshape 0 towards 0.5."""
    return v.beta[:1] - 0.5


def test_custom_terms_add_remove_reweight(tiny_model):
    m = tiny_model
    R, t = _rot(10, 5), np.array([0, 0, 600.0])
    lm = _project(m.vertices[m.landmark_indices], R, t, 640, (320, 240))
    # a weak expression prior (weight omega_r / sigma^2 = 111 against the target's 1e4: beta0 -> 0.4945)
    cfg = F.FitConfig(num_iterations=3, fit_corrective=False, expression_sigma=0.3)
    # add a term and remove the corrective field, without touching the solver
    terms = tuple(tm for tm in F.default_terms(cfg) if tm.name != "corrective") + (F.Term("target", _jaw_open_target, 1e4),)
    assert "corrective" not in {tm.name for tm in F.default_terms(cfg)}
    custom = F.fit(m, lm, (480, 640), config=cfg, terms=terms)
    assert custom.params.beta[0] == pytest.approx(0.5, abs=0.02)
    assert np.all(custom.params.delta_p == 0.0)
    assert set(custom.energy_terms) == {tm.name for tm in terms}
    assert float(custom.energy_terms["target"]) == pytest.approx(1e4 * (custom.params.beta[0] - 0.5) ** 2, rel=1e-3, abs=1e-6)
    # re-weight: a huge expression prior switches expressions off (weights are traced: no recompile)
    heavy = tuple(dataclasses.replace(tm, weight=1e8) if tm.name == "expression_prior" else tm for tm in terms)
    off = F.fit(m, lm, (480, 640), config=cfg, terms=heavy)
    assert np.abs(off.params.beta).max() < 0.02
    # fit_batch (vmapped) gives the same result as fit() per face
    lm2 = np.stack([lm, lm + np.random.default_rng(0).normal(0, 1.0, lm.shape)])
    batch = F.fit_batch(m, lm2, (480, 640), config=cfg, terms=terms)
    np.testing.assert_allclose(batch.vertices[0], custom.vertices, atol=1e-3)
    np.testing.assert_allclose(batch.energy[0], custom.energy, rtol=1e-5)
    assert not np.allclose(batch.vertices[1], custom.vertices, atol=1e-3)
    with pytest.raises(ValueError, match="unique"):
        F.fit(m, lm, (480, 640), terms=terms + terms[:1])


# --------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def low():
    from digitaltwin_jax.model.head_model import load_head_model

    return load_head_model("low")


# one compiled batch solver for the two tests below.  Exact synthetic faces with up to 0.5 of any
# three blendshapes and 0.7-1.5x focal: recovery is tested under the weak priors these parameters
# were drawn from (sigma 0.3, lambda_f 5), not under the defaults, which are calibrated to keep real
# detections of neutral faces neutral (docs page "Fidelity")
BATCH_CONFIG = F.FitConfig(fit_identity=True, expression_sigma=0.3, lambda_f=5.0, lambda_identity=1.0)


@needs_low
def test_synthetic_recovery_with_regressed_shape(low):
    """The paper's setting: the neutral shape comes from the regressor (here: the true identity;
    identity fitting on top of it stays near zero under its prior)."""
    faces = _synthetic_faces(low, 8, seed=0, noise=1.0)
    shapes = np.stack([c["identity"] for c in faces])
    res = F.fit_batch(low, np.stack([c["lm"] for c in faces]), faces[0]["hw"], shapes=shapes, config=BATCH_CONFIG)
    assert np.all(res.success)
    rot = np.array([_rotation_error_deg(res.params.q[i], c["R"]) for i, c in enumerate(faces)])
    assert rot.max() <= 2.0, rot
    # Reprojection RMSE (2D distance, px; the noise alone gives ~1.41 with sigma = 1 px per
    # coordinate).  A jaw point marks *some* point of the outline, so its error is measured across
    # the outline (normal from the neighbouring detected jaw points); where on the outline it sits is
    # ambiguous on flat stretches of the silhouette (reported, not asserted).
    err = np.zeros((len(faces), 68))
    for i, c in enumerate(faces):
        d = res.landmarks_2d[i] - c["lm"]
        err[i] = np.linalg.norm(d, axis=1)
        for j in [*range(8), *range(9, 17)]:
            tan = c["lm"][min(j + 1, 16)] - c["lm"][max(j - 1, 0)]
            tan = tan / np.linalg.norm(tan)
            err[i, j] = abs(tan[0] * d[j, 1] - tan[1] * d[j, 0])
    rmse = np.sqrt(np.mean(err**2, axis=1))
    np.testing.assert_allclose(np.delete(res.reprojection_errors, range(17), axis=1), np.delete(err, range(17), axis=1), atol=1e-3)
    assert rmse.max() <= 1.5, rmse
    clean = np.sqrt(np.mean(np.sum((res.landmarks_2d - np.stack([c["clean"] for c in faces])) ** 2, -1)[:, 17:], 1))
    assert clean.mean() <= 1.0, clean  # the inner landmarks are close to the noise-free projections
    assert np.all(np.diff(res.energy, axis=1) <= 1e-3 * res.energy[:, :1])  # energy never increases
    # the result's camera-frame vertices are the head-frame ones moved by (q, t)
    i = 0
    cam = res.vertices_camera[i]
    w_, x_, y_, z_ = res.params.q[i]
    Rq = np.array([[1 - 2 * (y_ * y_ + z_ * z_), 2 * (x_ * y_ - w_ * z_), 2 * (x_ * z_ + w_ * y_)],
                   [2 * (x_ * y_ + w_ * z_), 1 - 2 * (x_ * x_ + z_ * z_), 2 * (y_ * z_ - w_ * x_)],
                   [2 * (x_ * z_ - w_ * y_), 2 * (y_ * z_ + w_ * x_), 1 - 2 * (x_ * x_ + y_ * y_)]])
    np.testing.assert_allclose(cam, res.vertices[i] @ Rq.T + res.params.t[i], atol=1e-2)
    # landmarks_2d are the projections of the returned samples of the returned vertices
    p3 = np.sum(res.vertices[i][res.landmark_indices[i]] * res.landmark_weights[i][..., None], axis=1)
    np.testing.assert_allclose(res.landmarks_2d[i], _project(p3, Rq, res.params.t[i], float(res.intrinsics[i, 0, 0]), (320, 240)), atol=1e-2)


@needs_low
def test_identity_fit_without_noise_and_missing_landmarks(low):
    faces = _synthetic_faces(low, 8, seed=1, noise=0.0, expression=False)
    lm = np.stack([c["lm"] for c in faces])
    missing = [5, 40, 60]
    lm[1, missing] = np.nan
    mean = np.repeat(low.vertices[None], len(faces), axis=0)  # no regressed shape: start from the mean
    res = F.fit_batch(low, lm, faces[0]["hw"], shapes=mean, config=BATCH_CONFIG)
    fm = low.face_mask
    err = np.array([np.sqrt(np.mean(np.sum((res.vertices[i][fm] - c["verts"][fm]) ** 2, 1))) for i, c in enumerate(faces)])
    err_mean_head = np.array([np.sqrt(np.mean(np.sum((low.vertices[fm] - c["verts"][fm]) ** 2, 1))) for c in faces])
    rot = np.array([_rotation_error_deg(res.params.q[i], c["R"]) for i, c in enumerate(faces)])
    assert np.all(err < err_mean_head), (err, err_mean_head)
    assert err.mean() <= 0.75 * err_mean_head.mean(), (err, err_mean_head)
    assert rot.mean() <= 2.0, rot
    # a neutral face stays neutral: identity differences do not switch blendshapes on
    assert res.params.beta.max() <= 0.2, res.params.beta.max()
    # missing landmarks are masked, not propagated
    assert np.all(res.success)
    assert np.all(np.isfinite(res.vertices[1])) and np.all(np.isfinite(res.params.beta[1]))
    assert np.all(np.isnan(res.reprojection_errors[1, missing]))
    assert np.all(np.isfinite(np.delete(res.reprojection_errors[1], missing)))
