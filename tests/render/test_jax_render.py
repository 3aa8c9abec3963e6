"""digitaltwin_jax.render.jax_render against independent references: the numpy renderer and
rasteriser (images, barycentrics, texture lookups), finite differences (``check_grads``), closed forms
(SH orthonormality by quadrature, the clamped cosine's band-limited value)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax.geometry.rasterize import rasterize
from digitaltwin_jax.model import load_head_model
from digitaltwin_jax.render import icosphere
from digitaltwin_jax.render import jax_render as jr
from digitaltwin_jax.render.renderer import project_points, render_mesh
from digitaltwin_jax.render.shading import sample_texture as sample_texture_np


def _head_scene(h=120, w=96, yaw=20.0):
    m = load_head_model("low")
    y = np.deg2rad(yaw)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    v = (m.vertices @ (np.diag([1.0, -1.0, -1.0]) @ ry).T + [0.0, 0.0, 500.0]).astype(np.float32)
    f = 0.9 * w * 500.0 / 220.0
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    return m, v, K, f


@pytest.mark.parametrize("albedo", ["vertex", "texture", "specular"])
def test_head_image_matches_numpy_renderer_within_one_level(albedo):
    h, w = 120, 96
    m, v, K, f = _head_scene(h, w)
    rng = np.random.default_rng(0)
    kw = (dict(uvs=m.uvs, uv_faces=m.uv_faces, texture=rng.uniform(0, 1, (32, 32, 3)).astype(np.float32))
          if albedo == "texture" else dict(vertex_colors=rng.uniform(0.2, 0.9, (m.num_vertices, 3)).astype(np.float32)))
    if albedo == "specular":
        kw.update(specular=0.4, shininess=16.0)
    ref, cov = render_mesh(v, m.faces, K, (h, w), background=(0.1, 0.2, 0.3), **kw)
    pix = jr.pixel_grid(h, w)
    fid = jr.face_ids(jnp.asarray(project_points(v, K), jnp.float32), m.faces, h, w)
    img, c = jax.jit(lambda vv, fi: jr.render(vv, m.faces, f, jnp.array([w / 2, h / 2]), fi, pix, **kw,
                                              config=jr.RenderConfig(background=(0.1, 0.2, 0.3))))(v, fid)
    img = np.asarray(img).reshape(h, w, 3)
    assert img.dtype == np.float32
    assert cov.sum() > 0.3 * h * w
    assert np.abs(img - ref).mean() < 1.0 / 255.0
    np.testing.assert_array_equal(np.asarray(c).reshape(h, w), cov)


def test_barycentrics_match_numpy_rasteriser():
    m, v, K, f = _head_scene()
    pts = project_points(v, K)
    frags = rasterize(pts, m.faces, 120, 96, perspective=True)
    fid = frags.face_id.ravel()
    b = jr.barycentrics(jnp.asarray(pts, jnp.float32), m.faces, fid, jr.pixel_grid(120, 96))
    np.testing.assert_allclose(np.asarray(b), frags.bary.reshape(-1, 3), atol=2e-4)
    assert np.all(np.asarray(b)[fid < 0] == 0)


def test_sample_texture_matches_numpy():
    rng = np.random.default_rng(1)
    tex = rng.uniform(0, 1, (7, 9, 3)).astype(np.float32)
    uv = rng.uniform(-0.2, 1.2, (500, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(jr.sample_texture(tex, uv)), sample_texture_np(tex, uv), atol=1e-6)


def test_sh_basis_is_orthonormal_by_quadrature():
    n = 200_000  # Fibonacci sphere: equal-area points, quadrature error O(1/n)
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    d = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    Y = np.asarray(jr.sh_basis(jnp.asarray(d, jnp.float32)), np.float64)
    gram = Y.T @ Y * (4 * np.pi / n)
    np.testing.assert_allclose(gram, np.eye(9), atol=1e-3)


def test_sh_from_directional_closed_form_and_lambert_projection():
    l = np.array([0.3, -0.5, -1.0])
    c = np.asarray(jr.sh_from_directional(l, ambient=0.2, diffuse=0.7))
    ln = l / np.linalg.norm(l)
    # at n = l the band-limited clamped cosine is 1/4 + 1/2 + 5/16 = 17/16 (Ramamoorthi-Hanrahan)
    np.testing.assert_allclose(np.asarray(jr.sh_shading(jnp.asarray(ln, jnp.float32), c)), 0.2 + 0.7 * 17 / 16,
                               rtol=1e-5)
    # and it is the least-squares projection of max(0, n.l): compare with numerical projection
    rng = np.random.default_rng(0)
    d = rng.standard_normal((400_000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    Y = np.asarray(jr.sh_basis(jnp.asarray(d, jnp.float32)), np.float64)
    proj = Y.T @ (0.2 + 0.7 * np.maximum(d @ ln, 0)) * (4 * np.pi / len(d))
    np.testing.assert_allclose(c[:, 0], proj, atol=0.01)


def _small_scene(x64_dtype):
    v, f = icosphere(1, 15.0)
    v = v.astype(np.float64) + [3.0, -2.0, 200.0]
    h = w = 24
    focal, pp = 150.0, np.array([w / 2, h / 2])
    pts = np.concatenate([focal * v[:, :2] / v[:, 2:] + pp, v[:, 2:]], 1)
    fid = jr.face_ids_np(pts, f, h, w)
    pix = np.asarray(jr.pixel_grid(h, w), np.float64)
    # keep pixels well inside their triangle (no kink of the clamp) and inside the silhouette
    b = np.asarray(jr.barycentrics(jnp.asarray(pts), f, fid, pix, clip=False))
    keep = (fid >= 0) & (b.min(axis=1) > 0.03)
    keep &= np.arange(keep.size) % 3 == 0  # a third of them: enough pixels, a faster check
    return (jnp.asarray(v, x64_dtype), f, focal, jnp.asarray(pp, x64_dtype), jnp.asarray(fid[keep]),
            jnp.asarray(pix[keep], x64_dtype), fid, pix)


def test_render_gradients_pass_check_grads():
    with jax.enable_x64(True):
        v, f, focal, pp, fid, pix, _, _ = _small_scene(jnp.float64)
        assert fid.shape[0] > 50
        rng = np.random.default_rng(2)
        vc = jnp.asarray(rng.uniform(0.2, 0.6, (v.shape[0], 3)))
        sh = jnp.asarray(np.asarray(jr.sh_from_directional((0.2, -0.4, -1.0), 0.3, 0.5), np.float64))
        tex = jnp.asarray(rng.uniform(0.2, 0.8, (8, 8, 3)))
        uvs = jnp.asarray(rng.uniform(0.1, 0.9, (v.shape[0], 2)))

        @jax.jit
        def vertex_fn(vv, cc, ss):
            return jr.render(vv, f, focal, pp, fid, pix, vertex_colors=cc, sh_coeffs=ss)[0]

        check_grads(vertex_fn, (v, vc, sh), order=1, modes=("fwd", "rev"), eps=1e-4, atol=1e-4, rtol=1e-3)

        @jax.jit
        def tex_fn(vv, tt, uu):
            return jr.render(vv, f, focal, pp, fid, pix, uvs=uu, texture=tt, sh_coeffs=sh)[0]

        check_grads(tex_fn, (v, tex, uvs), order=1, modes=("fwd", "rev"), eps=1e-5, atol=1e-4, rtol=1e-3)


def test_soft_silhouette_gives_edge_gradients_that_match_finite_differences():
    with jax.enable_x64(True):
        v, f, focal, pp, _, _, fid_all, pix_all = _small_scene(jnp.float64)
        h = w = 24
        efid = jr.nearest_face_ids_np(fid_all, h, w, max_distance=2.0)
        ring = (fid_all < 0) & (efid >= 0)
        assert ring.sum() > 10
        fid, efid, pix = jnp.asarray(fid_all[ring]), jnp.asarray(efid[ring]), jnp.asarray(pix_all[ring])
        cfg = jr.RenderConfig(soft_sigma=0.7, background=(1.0, 1.0, 1.0))

        @jax.jit
        def cover(vv):
            return jr.render(vv, f, focal, pp, fid, pix, edge_face_id=efid, config=cfg)[1]

        c = cover(v)
        assert np.all((np.asarray(c) > 0) & (np.asarray(c) < 0.5))
        check_grads(cover, (v,), order=1, modes=("fwd", "rev"), eps=1e-5, atol=1e-5, rtol=1e-3)
        # growing the sphere about its centre raises the coverage of pixels outside it
        centre = jnp.mean(v, axis=0)
        grow = jax.grad(lambda s: jnp.sum(cover(centre + s * (v - centre))))(1.0)
        assert grow > 0


def test_degenerate_triangle_gives_no_nan_in_value_or_gradient():
    with jax.enable_x64(False):
        v = jnp.asarray([[0.0, 0.0, 100.0], [10.0, 0.0, 100.0], [20.0, 0.0, 100.0], [0.0, 10.0, 100.0]], jnp.float32)
        f = np.array([[0, 1, 2], [0, 1, 3]])  # face 0 has zero area (collinear)
        pix = jnp.asarray([[12.5, 10.5], [13.0, 12.0], [0.0, 0.0]], jnp.float32)
        fid = jnp.asarray([0, 1, -1])

        def fn(vv):
            return jnp.sum(jr.render(vv, f, 100.0, jnp.array([10.0, 10.0]), fid, pix,
                                     sh_coeffs=jr.sh_from_directional((0, 0, -1.0)))[0])

        val, g = jax.jit(jax.value_and_grad(fn))(v)
        assert np.isfinite(val) and np.all(np.isfinite(np.asarray(g)))
        b = jr.barycentrics(jr.screen_points(v, 100.0, jnp.array([10.0, 10.0])), f, fid, pix)
        assert np.all(np.asarray(b)[0] == 0) and np.all(np.asarray(b)[2] == 0)


def test_vmap_and_jit_over_a_batch_match_one_at_a_time():
    m, v, K, f = _head_scene(48, 40)
    h, w = 48, 40
    vs = np.stack([v, v + np.array([5.0, -3.0, 20.0], np.float32)])
    pp = jnp.array([w / 2, h / 2])
    pix = jr.pixel_grid(h, w)

    @jax.jit
    @jax.vmap
    def batch(vv):
        fid = jr.face_ids(jr.screen_points(vv, f, pp), m.faces, h, w)
        return jr.render(vv, m.faces, f, pp, fid, pix)[0], fid

    imgs, fids = batch(jnp.asarray(vs))
    for i in range(2):
        fid_np = jr.face_ids_np(project_points(vs[i], K), m.faces, h, w)
        np.testing.assert_array_equal(np.asarray(fids[i]), fid_np)
        ref, _ = render_mesh(vs[i], m.faces, K, (h, w))
        assert np.abs(np.asarray(imgs[i]).reshape(h, w, 3) - ref).mean() < 1.0 / 255.0
