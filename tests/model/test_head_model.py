"""The shipped head model asset: shapes, units, landmarks, resampling, head_shape."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax import head_shape, load_head_model
from digitaltwin_jax.model.head_model import asset_path

pytestmark = pytest.mark.skipif(not asset_path("ict_head_full.npz").exists(), reason="asset not built")
needs_low = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low asset not built")


@pytest.fixture(scope="module")
def full():
    return load_head_model("full")


def test_full_shapes_and_dtypes(full):
    V = full.num_vertices
    assert V == 11248
    assert full.faces.shape[1] == 3 and full.faces.dtype == np.int32 and full.faces.max() < V
    assert full.uv_faces.shape == full.faces.shape and full.uv_faces.max() < len(full.uvs)
    assert full.uvs.min() >= 0.0 and full.uvs.max() <= 1.0
    assert full.identity_basis.shape == (100, V, 3)
    M = full.num_expressions
    assert full.expression_basis.shape == (M, V, 3) and len(full.expression_names) == M
    assert 53 <= M <= 55
    for name in ("jawOpen", "mouthSmile_L", "eyeBlink_R", "browInnerUp_L", "cheekRaiser_L"):
        full.expression_index(name)
    assert "PupilDilate_L" not in full.expression_names
    assert full.landmark_indices.shape == (68,) and full.eval_landmark_indices.shape == (7,)
    assert len(full.contour_candidates[0]) == 17 and len(full.contour_candidates[1]) == 17
    assert full.face_weights.shape == (V,) and set(np.unique(full.face_weights)) == {1.0, 5.0}


def test_units_are_millimetres(full):
    v = full.vertices
    lm = v[full.landmark_indices]
    # skull width at ear level: the band around the outer eye corners' height behind the face
    ear_y = lm[[36, 45], 1].mean()
    band = v[(np.abs(v[:, 1] - ear_y) < 5.0) & (v[:, 2] < lm[[36, 45], 2].mean() - 40.0)]
    width = band[:, 0].max() - band[:, 0].min()
    assert 150.0 <= width <= 190.0, width
    # the neck base flares wider: below the chin, the widest 15 mm band is far wider than the
    # narrowest (the neck itself, 100-130 mm for adults)
    chin_y = lm[8, 1]
    widths = [np.ptp(v[(v[:, 1] >= y) & (v[:, 1] < y + 15.0), 0]) for y in np.arange(v[:, 1].min(), chin_y, 15.0)]
    assert 90.0 < min(widths) < 140.0
    assert max(widths) > 1.5 * min(widths)
    # interocular (outer corners) 85-110 mm is an adult range
    assert 80.0 < np.linalg.norm(lm[36] - lm[45]) < 110.0


def test_landmarks_on_the_face(full):
    v = full.vertices
    lm = v[full.landmark_indices]
    nose = v[full.nose_tip_index]
    assert np.all(np.linalg.norm(lm - nose, axis=1) < 130.0)  # jaw points reach the ears
    assert np.all(full.face_mask[full.landmark_indices[17:]])  # inner points: within 95 mm
    # iBUG order: point 36 is the subject's right eye (x < 0), 45 the left one (x > 0), chin below nose
    assert lm[36, 0] < 0 < lm[45, 0]
    assert lm[8, 1] < lm[30, 1] < lm[27, 1]
    # nose tip is the most protruding point of the face (+z)
    assert nose[2] == pytest.approx(v[: 9409, 2].max())
    # symmetric model: the jawline candidates mirror in x; both lists run in iBUG order
    # (right: ear -> chin like points 0-7, left: chin -> ear like points 9-16)
    r = v[list(full.contour_candidates[0])]
    left = v[list(full.contour_candidates[1])]
    np.testing.assert_allclose(r[:, 0], -left[::-1, 0], atol=0.5)
    assert r[0, 1] > r[-1, 1] and left[0, 1] < left[-1, 1]


def test_outer_surface_mask_excludes_interior(full):
    vis = full.outer_surface_mask
    assert 0.8 < vis.mean() < 0.97  # most of the head is outside
    assert vis[full.nose_tip_index] and vis[full.landmark_indices[8]]  # nose tip, chin
    # the deepest point of a nostril tunnel (highest y just behind the nostrils) is hidden
    assert not vis.all()


def test_head_shape_linear_and_jittable(full):
    rng = np.random.default_rng(1)
    a = rng.normal(size=100).astype(np.float32)
    b = rng.uniform(size=full.num_expressions).astype(np.float32)
    ref = full.vertices.astype(np.float64) + np.einsum("k,kvc->vc", a, full.identity_basis) + np.einsum(
        "m,mvc->vc", b, full.expression_basis)
    out = jax.jit(head_shape)(full, a, b)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-3)
    # vmap over identities
    outs = jax.vmap(lambda x: head_shape(full, x))(jnp.stack([a, -a]))
    np.testing.assert_allclose(np.asarray(outs[0] + outs[1]) / 2, full.vertices, atol=1e-3)
    # 2.5-sigma identities stay head sized
    with pytest.raises(ValueError, match="identity_coeffs"):
        head_shape(full, np.zeros(101))
    with pytest.raises(ValueError, match="expression_coeffs"):
        head_shape(full, None, np.zeros(3))


@needs_low
def test_low_is_exact_resampling_of_full(full):
    from digitaltwin_jax.model.head_model import resampling_matrix

    low = load_head_model("low")
    W = resampling_matrix()
    assert low.num_vertices <= 3000
    assert W.shape == (low.num_vertices, full.num_vertices)
    np.testing.assert_allclose(np.asarray(W.sum(axis=1)).ravel(), 1.0, atol=1e-6)
    assert W.data.min() >= 0.0
    rng = np.random.default_rng(2)
    a = rng.normal(size=100)
    b = rng.uniform(size=full.num_expressions)
    hi = np.asarray(head_shape(full, a, b), dtype=np.float64)
    lo = np.asarray(head_shape(low, a, b), dtype=np.float64)
    np.testing.assert_allclose(lo, W @ hi, atol=2e-3)
    np.testing.assert_allclose(low.vertices, W @ full.vertices.astype(np.float64), atol=1e-4)
    # landmarks are exact full vertices
    np.testing.assert_allclose(low.vertices[low.landmark_indices], full.vertices[full.landmark_indices], atol=1e-4)
    np.testing.assert_allclose(low.vertices[low.nose_tip_index], full.vertices[full.nose_tip_index], atol=1e-4)
