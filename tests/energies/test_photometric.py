"""energies.photometric: albedo and lighting recovered from the numpy renderer's image (PSNR inside the
face), the robust residual against its closed form, the residual's gradient against finite
differences, and the term inside fit_batch (no solver change)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax import fitting as F
from digitaltwin_jax.energies import photometric as ph
from digitaltwin_jax.model import load_head_model
from digitaltwin_jax.render import jax_render as jr
from digitaltwin_jax.render.colorspace import linear_to_srgb
from digitaltwin_jax.render.renderer import project_points, render_mesh
from digitaltwin_jax.texture.skin_mask import skin_mask


@pytest.fixture(scope="module")
def model():
    return load_head_model("low")


def _scene(model, h=160, w=128, yaw=15.0, seed=0):
    y = np.deg2rad(yaw)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    v = (model.vertices @ (np.diag([1.0, -1.0, -1.0]) @ ry).T + [0.0, 0.0, 500.0]).astype(np.float32)
    f = 400.0
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    rng = np.random.default_rng(seed)
    p = model.vertices / 100.0
    var = 0.15 * np.sin(3 * p[:, :1] + 1) * np.cos(2 * p[:, 1:2]) + 0.05 * rng.standard_normal((model.num_vertices, 1))
    albedo = np.clip(np.array([0.6, 0.42, 0.33]) * (1 + var), 0, 1).astype(np.float32)
    return v, f, K, albedo


def test_albedo_and_lighting_from_the_numpy_render_reach_35_db_inside_the_face(model):
    h, w = 160, 128
    v, f, K, albedo = _scene(model, h, w)
    # independent renderer, independent lighting model (directional Lambert + ambient, not SH)
    img, _ = render_mesh(v, model.faces, K, (h, w), vertex_colors=albedo, light_dir=(-0.4, -0.5, -1.0),
                         ambient=0.3, diffuse=0.7)
    consts = ph.photometric_constants(model)
    fid = jr.face_ids_np(project_points(v, K), model.faces, h, w)
    face = (fid >= 0) & (consts.face_ok[np.maximum(fid, 0)] > 0)
    assert face.sum() > 5000
    pp = jnp.array([w / 2, h / 2])
    pix = jr.pixel_grid(h, w)
    sel = np.flatnonzero(face)
    cfg = ph.PhotometricConfig(albedo_ridge=0.01, alternations=4, cg_iterations=40)
    bary, corners, basis = ph.shade_samples(jnp.asarray(v), model.faces, f, pp, jnp.asarray(fid[sel]), pix[sel])
    a, sh = jax.jit(ph.solve_albedo_lighting, static_argnames=("num_vertices", "config"))(
        bary, corners, basis, jnp.asarray(img.reshape(-1, 3)[sel]), jnp.ones(sel.size), num_vertices=model.num_vertices,
        config=cfg)
    assert a.dtype == jnp.float32 and a.shape == (model.num_vertices, 3) and sh.shape == (9, 3)
    out, _ = jr.render(v, model.faces, f, pp, jnp.asarray(fid), pix, vertex_colors=a, sh_coeffs=sh,
                       config=jr.RenderConfig(two_sided=True))
    out = np.asarray(out).reshape(-1, 3)[sel]
    mse = np.mean((out - img.reshape(-1, 3)[sel]) ** 2)
    assert 10 * np.log10(1.0 / mse) >= 35.0


def test_robust_residual_squares_to_the_cauchy_loss_and_is_nan_free_at_zero():
    c = 0.05
    r = jnp.asarray([-0.3, -0.01, 0.0, 1e-5, 0.02, 1.5], jnp.float32)
    got = np.asarray(ph.robust_residual(r, c), np.float64)
    rr = np.asarray(r, np.float64)
    np.testing.assert_allclose(got**2, c * c * np.log1p(rr**2 / c**2), rtol=1e-5, atol=1e-12)
    assert np.all(np.sign(got) == np.sign(rr))
    g = jax.grad(lambda x: ph.robust_residual(x, c))(0.0)
    assert np.isfinite(g) and abs(float(g) - 1.0) < 1e-6


def _fit_inputs(model, seed, hw=(120, 160), samples=256):
    """A synthetic face (random identity, known pose) rendered by the numpy renderer, its landmarks."""
    from digitaltwin_jax.energies import landmarks as lmk

    rng = np.random.default_rng(seed)
    shape = model.vertices + np.tensordot(0.5 * rng.standard_normal(10), model.identity_basis[:10], 1)
    y = np.deg2rad(15.0 * (seed % 2 * 2 - 1))
    R = np.diag([1.0, -1.0, -1.0]) @ np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    h, w = hw
    f = float(max(h, w))
    cam = shape @ R.T + [0.0, 0.0, 600.0]
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    img, _ = render_mesh(cam, model.faces, K, hw, vertex_colors=np.full((model.num_vertices, 3), 0.45, np.float32),
                         light_dir=(-0.4, -0.5, -1.0), ambient=0.3, diffuse=0.7)
    lm3 = shape[model.landmark_indices] @ R.T + [0.0, 0.0, 600.0]
    lm = f * lm3[:, :2] / lm3[:, 2:] + [w / 2, h / 2] + rng.normal(0, 0.5, (68, 2))
    mask = skin_mask(lm, hw)
    fn, data, consts = ph.photometric_inputs(model, linear_to_srgb(img), mask, shape=shape,
                                             config=ph.PhotometricConfig(num_samples=samples), rng=rng)
    return lm, shape, fn, data, consts


def _fit_data(fn, data, consts, dtype):
    """The fields of FitData the term reads, as a pytree (focal, principal, the term's own inputs)."""
    names = ["focal", "principal", "term_data", "term_constants"]
    cls = jax.tree_util.register_dataclass(dataclasses.make_dataclass("FD", names, frozen=True), data_fields=names,
                                           meta_fields=[])
    cast = lambda a: jnp.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a)  # noqa: E731
    hw = fn.image_size
    return cls(jnp.asarray(float(max(hw)), dtype), jnp.asarray([hw[1] / 2, hw[0] / 2], dtype),
               {fn.name: jax.tree_util.tree_map(cast, data)}, {fn.name: jax.tree_util.tree_map(cast, consts)})


def _frontal(model, dtype):
    return F.FitVariables(beta=jnp.zeros(model.num_expressions, dtype), alpha=jnp.zeros(0, dtype),
                          t=jnp.asarray([0.0, 0.0, 600.0], dtype), q=jnp.asarray([0.0, 1.0, 0.0, 0.0], dtype),
                          f_s=jnp.asarray(1.0, dtype), offsets=jnp.zeros((68, 3), dtype))


def test_empty_mask_gives_zero_residuals_and_finite_albedo_and_lighting(model):
    lm, shape, fn, data, consts = _fit_inputs(model, 0, samples=64)
    data = dataclasses.replace(data, weights=np.zeros_like(data.weights))
    fdata = _fit_data(fn, data, consts, jnp.float32)
    v = _frontal(model, jnp.float32)
    _, fdata = jax.jit(fn.relinearize)(v, fdata, jnp.asarray(0))
    d = fdata.term_data[fn.name]
    assert np.all(np.isfinite(np.asarray(d.albedo))) and np.all(np.isfinite(np.asarray(d.sh)))
    r = fn(v, fdata, F.TermInputs(face=d, shared=fdata.term_constants[fn.name]))
    assert r.shape == (3 * 64,) and np.all(np.asarray(r) == 0)


def test_residual_gradient_matches_finite_differences(model):
    lm, shape, fn, data, consts = _fit_inputs(model, 0, samples=64)
    with jax.enable_x64(True):
        v = _frontal(model, jnp.float64)  # q: 180 degrees about x, the head faces the camera
        fdata = _fit_data(fn, data, consts, jnp.float64)
        c64 = fdata.term_constants[fn.name]
        # the hook sets triangles, albedo and lighting; then the residual is a smooth function of v
        _, fdata = jax.jit(fn.relinearize)(v, fdata, jnp.asarray(0))
        own = F.TermInputs(face=fdata.term_data[fn.name], shared=c64)
        assert np.sum(np.asarray(fn._weights(own.face, c64)) > 0) > 20

        @jax.jit
        def res(t, beta):
            return fn(dataclasses.replace(v, t=t, beta=beta), fdata, own)

        check_grads(res, (v.t, v.beta), order=1, modes=("fwd", "rev"), eps=1e-4, atol=1e-5, rtol=1e-3)


def test_term_runs_inside_fit_batch_without_solver_changes(model):
    cfg = F.FitConfig(num_iterations=2)
    faces = [_fit_inputs(model, s) for s in (1, 2)]
    fn, consts = faces[0][2], faces[0][4]
    data = jax.tree_util.tree_map(lambda *a: np.stack(a), *[f[3] for f in faces])
    term = F.Term(fn.name, fn, 1e4, data=data, constants=consts)
    res = F.fit_batch(model, np.stack([f[0] for f in faces]), fn.image_size, np.stack([f[1] for f in faces]), cfg,
                      terms=F.default_terms(cfg) + (term,))
    e = res.energy_terms["photometric"]
    assert e.shape == (2,) and np.all(np.isfinite(e)) and np.all(e > 0)
    assert np.all(res.success)
