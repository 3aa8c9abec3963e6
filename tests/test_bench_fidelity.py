"""The fidelity benchmark's scoring and decision path on a small set with known ground truth (the
rendering part of ``--quick`` is covered by tests/synth; this runs everything after it)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fidelity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fidelity", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scoring_rows_decision_and_table(bench):
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.camera import frontal_rotation, intrinsics
    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.regressor.evaluate import EvalData, predict_with_fits
    from digitaltwin_jax.synth.engine import project_landmarks

    model = load_head_model("low")
    rng = np.random.default_rng(0)
    n, size, fs = 4, 512, 1.4
    gt = (model.vertices[None] + np.tensordot(rng.normal(size=(n, 20)), model.identity_basis[:20], axes=1)).astype(np.float32)
    K = np.asarray(intrinsics((size, size), fs), np.float64)
    R = frontal_rotation().astype(np.float64)
    t = np.array([0.0, 0.0, 700.0])
    lms = np.stack([project_landmarks(g, model.landmark_indices, R, t, K) for g in gt])
    data = EvalData(gt, np.zeros((n, 128), np.float32), lms, np.tile([size, size], (n, 1)),
                    np.array([str(i) for i in range(n)]), K=np.tile(K, (n, 1, 1)), rotation=np.tile(R, (n, 1, 1)),
                    expression=np.zeros((n, model.num_expressions), np.float32))
    heads, fits = predict_with_fits(model, data, None, ("mean", "mean+fit", "landmark_fit"), progress=False)
    scores = {m: score_heads(model, gt, h, radii=bench.RADII) for m, h in heads.items()}
    rows = bench._summary_rows("b", scores, fits, data)
    by = {r["method"]: r for r in rows}
    assert by["mean"]["diff_95"]["mean"] == 0.0 and by["mean"]["n"] == n
    # paired differences are the per-item differences of the two score arrays
    d = scores["landmark_fit"].armse_mm[:, 1] - scores["mean"].armse_mm[:, 1]
    assert by["landmark_fit"]["diff_95"]["mean"] == pytest.approx(d.mean())
    # exact landmarks from a known camera: pose within a few degrees, focal error reported
    assert by["mean+fit"]["pose_err_deg"]["mean"] < 5.0
    fe = np.abs(fits["mean+fit"].intrinsics[:, 0, 0] / K[0, 0] - 1) * 100
    assert by["mean+fit"]["focal_err_pct_median"] == pytest.approx(np.median(fe))
    assert by["mean+fit"]["neutral"] is True
    domain = {"real_median_mahalanobis": 30.0, "m_ref": 12.0}
    dec = bench._decision(rows, domain, [], guard=None)
    assert dec["mean"]["eligible"]
    for m in ("mean+fit", "landmark_fit"):
        assert dec[m]["eligible"] == (by[m]["diff_95"]["hi"] < 0)
        assert "(c)(i) not run" in dec[m]["why"]
    table = bench.markdown({"rows": rows})
    assert table.count("\n") == len(rows) + 1 and "| b | landmark_fit |" in table


def test_decision_rule_regressor_needs_guard_or_familiar_embeddings(bench):
    row = {"method": "regressor+fit", "diff_95": {"mean": -0.4, "lo": -0.5, "hi": -0.3}}
    grow = {"method": "guarded+fit", "diff_95": {"mean": -0.4, "lo": -0.5, "hi": -0.3}}
    far = {"real_median_mahalanobis": 30.0, "m_ref": 12.0}
    near = {"real_median_mahalanobis": 10.0, "m_ref": 12.0}
    assert not bench._decision([row], far, [], guard=None)["regressor+fit"]["eligible"]
    assert bench._decision([row], near, [], guard=None)["regressor+fit"]["eligible"]
    assert bench._decision([grow], far, [], guard=object())["guarded+fit"]["eligible"]
    # losing on same-person retrieval vetoes a stage
    retr = [{"method": "mean+fit", "rank1": 0.8, "rank1_lo": 0.6}, {"method": "guarded+fit", "rank1": 0.3, "rank1_lo": 0.1}]
    assert not bench._decision([grow], far, retr, guard=object())["guarded+fit"]["eligible"]
