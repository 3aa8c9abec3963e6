"""The regressor command line: parsing and the default-shape-source decision rule."""
import pytest

from digitaltwin_jax.regressor.cli import build_parser, default_decision


def test_parser_defaults_are_the_papers():
    a = build_parser().parse_args(["train", "d1", "d2", "--out", "o"])
    assert (a.epochs, a.batch_size, a.lr, a.pca_scale, a.activation) == (500, 64, 1e-4, "std", "elu")
    assert a.data == ["d1", "d2"]
    e = build_parser().parse_args(["evaluate", "t", "--out", "o"])
    assert e.methods.split(",") == ["mean", "landmark_fit", "regressor", "regressor+fit"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "d"])  # --out is required


def _s(values):
    return {"mean": values}


def test_default_decision_rule():
    better = {"landmark_fit": _s([2.0, 2.2]), "regressor": _s([1.9, 2.0]), "regressor+fit": _s([2.5, 2.5])}
    d = default_decision(better)
    assert d["use_as_default"] is True and "regressor 1.950" in d["default_reason"]
    worse = {"landmark_fit": _s([2.0, 2.2]), "regressor": _s([2.1, 2.2]), "regressor+fit": _s([2.2, 2.3])}
    assert default_decision(worse)["use_as_default"] is False
    assert default_decision({"regressor": _s([1.0])})["use_as_default"] is False
