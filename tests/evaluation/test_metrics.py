"""ARMSE, crop rule, evaluation protocol and NoW-style metric (digitaltwin_jax/evaluation/crop.py, registration.py,
armse_metric.py, protocol.py, now.py), through their re-exports in evaluation/metrics.py."""
import numpy as np
import pytest

from digitaltwin_jax.evaluation import metrics as M
from digitaltwin_jax.evaluation.align import ICPConfig, SimilarityTransform

def _face_planes(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return n, (n * v[f[:, 0]]).sum(1)


def _inside_convex_distance(x, v, f):
    """Distance from points inside a convex closed mesh to its surface: min over face planes."""
    n, c = _face_planes(v, f)
    return (c[None, :] - x @ n.T).min(1)


def _landmark_indices(v):
    """Seven well-spread vertices on the +z side (stand-ins for eye corners, subnasale, mouth corners)."""
    targets = np.array([[-0.5, 0.35, 0.8], [-0.2, 0.35, 0.9], [0.2, 0.35, 0.9], [0.5, 0.35, 0.8],
                        [0.0, -0.1, 1.0], [-0.3, -0.4, 0.85], [0.3, -0.4, 0.85]])
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    t = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    return np.argmax(t @ u.T, axis=1)


def test_crop_mesh_rule_matches_loop(em):
    v, f = em.grid(10, 100.0)
    c, d = np.array([10.0, -5.0, 3.0]), 30.0
    faces, mask = M.crop_mesh(v, f, c, d)
    ref = [tuple(t) for t in f if all(np.linalg.norm(v[i] - c) <= d for i in t)]
    assert [tuple(t) for t in faces] == ref
    ref_mask = np.zeros(len(v), bool)
    ref_mask[np.array(ref).ravel()] = True
    np.testing.assert_array_equal(mask, ref_mask)
    with pytest.raises(ValueError, match="no triangle"):
        M.crop_mesh(v, f, np.array([500.0, 0, 0]), 10.0)
    with pytest.raises(ValueError, match="radius"):
        M.crop_mesh(v, f, c, -1.0)


@pytest.mark.parametrize("crop_target", M.CROP_TARGETS)
def test_armse_of_mesh_against_itself_is_zero(crop_target, em):
    """A mesh against itself: with crop target "prediction" the ground truth is a scan of the same
    region (3DFAW), with "ground_truth" the prediction is (NoW/ESRC); both/none crop symmetrically."""
    v, f = em.bumpy_sphere(3, 90.0)
    c, d = v[_landmark_indices(v)[4]], 80.0
    region = np.array([t for t in f if (np.linalg.norm(v[t] - c, axis=1) <= d).all()])
    pred_f, gt_f = {"prediction": (f, region), "ground_truth": (region, f)}.get(crop_target, (f, f))
    res = M.armse_curve(v, pred_f, v, gt_f, center=c, radii=(d,), crop_target=crop_target, interocular=60.0)
    for r in res:
        assert r.armse < 1e-9 and r.armse_percent_iod < 1e-7
        assert r.num_pred_points > 0 and r.num_gt_points > 0
    if crop_target in ("both", "none"):
        for r in M.armse_curve(v, f, v, f, center=c, radii=(40.0, 120.0), crop_target=crop_target):
            assert r.armse < 1e-9


def test_armse_scaled_sphere_matches_hand_computation(em):
    """Prediction = ground-truth icosphere scaled by k about its centre (crop: none).

    pred -> gt: every scaled vertex k v has the original vertex v as closest point, distance (k-1) R.
    gt -> pred: each original vertex is inside the scaled convex polyhedron, so its distance is the
    smallest face-plane distance, min_f (k c_f - n_f . v)."""
    R, k, iod = 50.0, 1.1, 62.0
    v, f = em.icosphere(3, R)
    pred = v * k
    rmse_pg = (k - 1) * R
    rmse_gp = np.sqrt(np.mean(_inside_convex_distance(v, pred, f) ** 2))
    expected = 0.5 * (rmse_pg + rmse_gp)
    r = M.armse(pred, f, v, f, center=np.zeros(3), radius=1000.0, crop_target="none", interocular=iod)
    assert r.rmse_pred_to_gt == pytest.approx(rmse_pg, rel=1e-9)
    assert r.rmse_gt_to_pred == pytest.approx(rmse_gp, rel=1e-9)
    assert r.armse == pytest.approx(expected, rel=1e-9)
    assert r.armse_percent_iod == pytest.approx(100 * expected / iod, rel=1e-9)
    assert np.isnan(M.armse(pred, f, v, f, center=np.zeros(3), radius=1e3).armse_percent_iod)


def test_armse_crop_prediction_on_planes(em):
    """Ground truth: plane z=0 over [-50, 50]^2.  Prediction: the same grid scaled by 1.2 about (0, 0, -10)
    (plane z = 2, wider).  Cropping the prediction at d = 40 around the origin keeps vertices that all
    project inside the ground truth: pred -> gt is exactly 2 mm; gt -> pred is checked against the
    brute-force reference on the cropped prediction."""
    gv, gf = em.grid(20, 100.0)
    pv = (gv - np.array([0, 0, -10.0])) * 1.2 + np.array([0, 0, -10.0])
    d = 40.0
    r = M.armse(pv, gf, gv, gf, center=np.zeros(3), radius=d, crop_target="prediction")
    assert r.rmse_pred_to_gt == pytest.approx(2.0, rel=1e-12)
    kept = np.array([t for t in gf if (np.linalg.norm(pv[t], axis=1) <= d).all()])
    ref_gp = np.sqrt(np.mean(em.brute_force_distance(gv, pv, kept) ** 2))
    assert r.rmse_gt_to_pred == pytest.approx(ref_gp, rel=1e-9)
    used = np.isfinite(r.pred_errors)
    np.testing.assert_array_equal(used, np.isin(np.arange(len(pv)), kept.ravel()))
    # cropping the ground truth as well removes its far corners: gt -> pred must drop
    both = M.armse(pv, gf, gv, gf, center=np.zeros(3), radius=d, crop_target="both")
    assert both.rmse_gt_to_pred < r.rmse_gt_to_pred


def test_prediction_mask_and_internal_surfaces(em):
    """A prediction with an internal 'eyeball' just under the surface: the mask removes it from the
    prediction -> gt direction, mask_target_surface from the gt -> prediction direction; both then
    equal the plain scaled-sphere hand computation."""
    R, k = 50.0, 1.1
    v, f = em.icosphere(3, R)
    ev, ef = em.icosphere(1, 2.0)
    top = np.argmax(v[:, 2])
    eye_c = np.array([0, 0, R - 1.0])
    pred_v = np.concatenate([v * k, ev + eye_c])
    pred_f = np.concatenate([f, ef + len(v)])
    mask = np.arange(len(pred_v)) < len(v)
    rmse_pg = (k - 1) * R
    rmse_gp = np.sqrt(np.mean(_inside_convex_distance(v, v * k, f) ** 2))
    kw = dict(center=np.zeros(3), radius=1e3, crop_target="none")
    full = M.armse(pred_v, pred_f, v, f, pred_mask=mask, mask_target_surface=True, **kw)
    assert full.rmse_pred_to_gt == pytest.approx(rmse_pg, rel=1e-9)
    assert full.rmse_gt_to_pred == pytest.approx(rmse_gp, rel=1e-9)
    assert np.isnan(full.pred_errors[~mask]).all()
    unmasked = M.armse(pred_v, pred_f, v, f, **kw)
    assert unmasked.rmse_pred_to_gt != pytest.approx(rmse_pg, rel=1e-3)
    # without mask_target_surface the eyeball captures the top ground-truth vertex
    surf = M.armse(pred_v, pred_f, v, f, pred_mask=mask, **kw)
    assert surf.gt_errors[top] < full.gt_errors[top] - 1.0


@pytest.mark.parametrize("direction", ["ground_truth_to_prediction", "prediction_to_ground_truth"])
def test_evaluate_reconstruction_undoes_a_similarity(direction, em):
    gv, gf = em.bumpy_sphere(3, 90.0)
    lm = _landmark_indices(gv)
    rng = np.random.default_rng(8)
    t = SimilarityTransform(1.1, em.random_rotation(rng, 20.0), np.array([5.0, -30.0, 12.0]))
    pv = t.apply(gv)
    # landmark noise of ~2 mm: the landmark fit alone is off, ICP removes the error
    gt_lm = gv[lm] + rng.normal(scale=2.0, size=(7, 3))
    cfg = M.EvaluationConfig(
        alignment=M.AlignmentConfig(icp=ICPConfig(with_scale=True, trim_fraction=0.0, tolerance=1e-12), icp_direction=direction),
        radii=(60.0, 100.0),
    )
    res = M.evaluate_reconstruction(pv, gf, gv, gf, pred_landmarks=pv[lm], gt_landmarks=gt_lm,
                                    gt_center=gv[lm[4]], config=cfg)
    for r in res.armse:
        assert r.armse < 1e-3
    np.testing.assert_allclose(res.alignment.vertices, gv, atol=1e-2)
    assert res.interocular == pytest.approx(np.linalg.norm(gt_lm[0] - gt_lm[3]))
    rows = res.table()
    assert [row["radius"] for row in rows] == [60.0, 100.0]
    lm_only = M.evaluate_reconstruction(pv, gf, gv, gf, pred_landmarks=pv[lm], gt_landmarks=gt_lm,
                                        config=M.EvaluationConfig(alignment=M.AlignmentConfig(icp=None), radii=(60.0,)))
    assert lm_only.armse[0].armse > 0.3
    # default crop centre: mean of the 7 ground-truth landmarks (the paper's ESRC rule)
    np.testing.assert_allclose(lm_only.center, gt_lm.mean(0))


def test_evaluation_bad_inputs(em):
    v, f = em.icosphere(2, 50.0)
    lm = _landmark_indices(v)
    with pytest.raises(ValueError, match=r"\(7, 3\)"):
        M.evaluate_reconstruction(v, f, v, f, pred_landmarks=v[:5], gt_landmarks=v[lm])
    with pytest.raises(ValueError, match="crop_target"):
        M.armse(v, f, v, f, center=np.zeros(3), radius=10.0, crop_target="scan")
    with pytest.raises(ValueError, match="crop_target"):
        M.EvaluationConfig(crop_target="x")
    with pytest.raises(ValueError, match="radii"):
        M.armse_curve(v, f, v, f, center=np.zeros(3), radii=(-1.0,))
    with pytest.raises(ValueError, match="pred_mask"):
        M.armse(v, f, v, f, center=np.zeros(3), radius=100.0, pred_mask=np.ones(len(v)))
    with pytest.raises(ValueError, match="center"):
        M.armse(v, f, v, f, center=np.array([0.0, np.nan, 0]), radius=100.0)
    # degenerate faces are measured, not refused (tests/evaluation/test_degenerate_meshes.py)
    assert np.isfinite(M.armse(v, np.concatenate([f, [[0, 0, 1]]]), v, f, center=np.zeros(3), radius=100.0).armse)
    with pytest.raises(ValueError, match="icp_direction"):
        M.AlignmentConfig(icp_direction="both")


def test_now_metric_rigid_and_concentric(em):
    sv, sf = em.bumpy_sphere(3, 90.0)
    lm = _landmark_indices(sv)
    rng = np.random.default_rng(3)
    t = SimilarityTransform(1.0, em.random_rotation(rng, 25.0), np.array([0.0, 40.0, -10.0]))
    res = M.now_metric(sv, t.apply(sv), sf, scan_landmarks=sv[lm] + rng.normal(scale=1.5, size=(7, 3)),
                       pred_landmarks=t.apply(sv)[lm], config=M.NoWConfig(landmark_scale=False))
    assert res.median < 1e-4 and res.mean < 1e-4
    # concentric icospheres, prediction 1.5 mm larger, landmarks at the same points: the landmark fit
    # is the identity; scan vertices lie inside the convex prediction, so their distances are
    # face-plane distances (hand computation)
    v, f = em.icosphere(3, 80.0)
    pred = v * (81.5 / 80.0)
    lm = _landmark_indices(v)
    ref = _inside_convex_distance(v, pred, f)
    res = M.now_metric(v, pred, f, scan_landmarks=v[lm], pred_landmarks=v[lm],
                       config=M.NoWConfig(landmark_scale=False, icp=None))
    assert res.median == pytest.approx(np.median(ref), rel=1e-9)
    assert res.mean == pytest.approx(ref.mean(), rel=1e-9)
    assert res.std == pytest.approx(ref.std(), rel=1e-9)
    # rigid ICP can only lower the squared error (it may rotate facets against vertices), never scale
    refined = M.now_metric(v, pred, f, scan_landmarks=v[lm], pred_landmarks=v[lm],
                           config=M.NoWConfig(landmark_scale=False))
    assert np.sqrt(np.mean(refined.distances**2)) <= np.sqrt(np.mean(ref**2)) + 1e-9
    assert refined.transform.scale == 1.0 and refined.median > 1.0
    # a crop radius keeps only scan points near the centre
    cropped = M.now_metric(v, pred, f, scan_landmarks=v[lm], pred_landmarks=pred[lm],
                           config=M.NoWConfig(landmark_scale=False, crop_radius=40.0, icp=None))
    assert 0 < cropped.distances.size < len(v)


def test_model_topology_prediction():
    from digitaltwin_jax.model.head_model import asset_path, load_head_model

    if not asset_path("ict_head_low.npz").exists():
        pytest.skip("head model asset missing")
    model = load_head_model("low")
    pv = model.vertices.astype(np.float64)
    rng = np.random.default_rng(0)
    t = SimilarityTransform(1.0, np.eye(3), np.array([1.0, -2.0, 0.5]))
    gv = t.apply(pv)
    gt_lm = gv[model.eval_landmark_indices] + rng.normal(scale=0.5, size=(7, 3))
    # the ground truth here still has the internal surfaces the mask removes from the prediction:
    # the default trimmed ICP ignores them
    res = M.evaluate_model_prediction(model, pv, gv, model.faces, gt_lm)
    assert [r.radius for r in res.armse] == list(M.DEFAULT_RADII)
    for r in res.armse:
        assert r.armse < 1e-2
        # the outer-surface mask is applied in the prediction -> ground-truth direction
        assert np.isnan(r.pred_errors[~model.outer_surface_mask]).all()
    np.testing.assert_allclose(res.center, gv[model.nose_tip_index], atol=0.05)
    with pytest.raises(ValueError, match="vertices"):
        M.evaluate_model_prediction(model, pv[:100], gv, model.faces, gt_lm)
