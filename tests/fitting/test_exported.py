"""fitting.exported (digitaltwin_jax/fitting/exported.py): the solve kept on disk as an exported program.

Checked against the plain jitted path and numpy: the same numbers whether the program was traced,
exported, or read back from disk; a new file only when the key changes; user functions bypass the
store; a damaged file is rewritten with a warning.
"""
import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax import fitting as F
from digitaltwin_jax.fitting import exported as E
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.terms import default_terms
from digitaltwin_jax.model.head_model import asset_path, load_head_model
from digitaltwin_jax.solvers.gauss_newton import GaussNewtonConfig


@jax.jit
def _affine(x, y, *, scale):
    return {"out": scale * (x @ y) + 1.0, "norm": jnp.linalg.norm(x, axis=1)}


def _run(x, y, *, scale):
    return _affine(x, y, scale=scale)


def _call(store, x, y, scale):
    fn = functools.partial(_run, scale=scale)
    return E.call(fn, (x, y), ("test_affine", scale), store=store)


def _expected(x, y, scale):
    return scale * (np.asarray(x, np.float64) @ np.asarray(y, np.float64)) + 1.0


def test_describe_static_names_package_objects_and_refuses_the_rest():
    cfg = GaussNewtonConfig(num_iterations=7, damping=0.125)
    text = E.describe_static((cfg, ("alpha", 0.1), {"b": 2, "a": True}))
    assert "GaussNewtonConfig" in text and "num_iterations" not in text  # fields by value, in order
    assert "7" in text and repr(0.125) in text and repr(0.1) in text
    assert E.describe_static(0.1) != E.describe_static(0.1 + 1e-16 * 8)  # floats exactly
    assert E.describe_static(F.fit) == "digitaltwin_jax.fitting.api.fit"
    assert E.describe_static(lambda v: v) is None
    assert E.describe_static(_run) is None  # a function outside the package (this test module)

    def inner(v):
        return v

    assert E.describe_static(inner) is None
    assert E.describe_static(object()) is None
    # the default terms: every function and dataclass is the package's own
    assert E.describe_static(tuple(default_terms(FitConfig()))) is not None


def test_off_store_is_the_plain_call(tmp_path):
    store = E.ExportStore(directory=None)
    x, y = np.arange(6.0, dtype=np.float32).reshape(2, 3), np.ones((3, 2), np.float32)
    out = _call(store, x, y, 2.0)
    np.testing.assert_allclose(np.asarray(out["out"]), _expected(x, y, 2.0), rtol=1e-6)
    assert store.written == store.loaded == 0 and not any(tmp_path.iterdir())


def test_written_once_loaded_in_a_new_process_and_keyed(tmp_path):
    store = E.ExportStore(directory=tmp_path / "exp")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    a = _call(store, x, y, 3.0)
    assert store.written == 1 and store.loaded == 0
    files = sorted((tmp_path / "exp").glob("*.jaxexport"))
    assert len(files) == 1
    store.clear_memory()  # as a new process: the program comes from the file
    b = _call(store, x, y, 3.0)
    assert store.written == 1 and store.loaded == 1
    for out in (a, b):
        np.testing.assert_allclose(np.asarray(out["out"]), _expected(x, y, 3.0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out["norm"]), np.linalg.norm(x, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(a["out"]), np.asarray(b["out"]))
    # new data of the same shapes: same program; another static or another shape: another file
    _call(store, x + 1, y, 3.0)
    assert len(list((tmp_path / "exp").glob("*.jaxexport"))) == 1
    c = _call(store, x, y, 4.0)
    np.testing.assert_allclose(np.asarray(c["out"]), _expected(x, y, 4.0), rtol=1e-5, atol=1e-5)
    _call(store, x[:2], y, 3.0)
    assert len(list((tmp_path / "exp").glob("*.jaxexport"))) == 3


def test_user_functions_bypass_the_store(tmp_path):
    store = E.ExportStore(directory=tmp_path)
    x, y = np.eye(3, dtype=np.float32), np.full((3, 2), 2.0, np.float32)
    fn = functools.partial(_run, scale=1.5)
    out = E.call(fn, (x, y), ("user", lambda v: v), store=store)
    np.testing.assert_allclose(np.asarray(out["out"]), _expected(x, y, 1.5), rtol=1e-6)
    assert store.written == 0 and not list(tmp_path.glob("*.jaxexport"))


def test_a_damaged_file_is_rewritten_with_a_warning(tmp_path):
    store = E.ExportStore(directory=tmp_path)
    x, y = np.ones((2, 2), np.float32), np.ones((2, 2), np.float32)
    _call(store, x, y, 1.0)
    (path,) = tmp_path.glob("*.jaxexport")
    path.write_bytes(b"not a program")
    store.clear_memory()
    with pytest.warns(UserWarning, match="could not be read"):
        out = _call(store, x, y, 1.0)
    np.testing.assert_allclose(np.asarray(out["out"]), _expected(x, y, 1.0))
    assert store.written == 2 and path.stat().st_size > 100


@pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")
def test_fit_through_the_store_equals_the_plain_fit(tmp_path, monkeypatch):
    """The default fit of a known pose: the exported program (from a file) gives the plain jit's numbers."""
    import cv2

    model = load_head_model("low")
    hw = (480, 640)
    yaw = np.deg2rad(-15.0)
    R = np.diag([1.0, -1.0, -1.0]) @ np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    f = 1.1 * max(hw)
    t = np.array([-8.0, 4.0, f * 160.0 / (0.4 * hw[0])])
    K = np.array([[f, 0, hw[1] / 2], [0, f, hw[0] / 2], [0, 0, 1]])
    pts = np.asarray(model.vertices, np.float64)[np.asarray(model.landmark_indices)]
    lm = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], t, K, None)[0].reshape(-1, 2)

    plain = F.fit(model, lm, hw)
    store = E.shared_store()
    monkeypatch.setattr(store, "directory", tmp_path)
    store.clear_memory()  # programs an earlier test (an in-process command) left in this process's memo
    before = store.written, store.loaded
    F.fit(model, lm, hw)
    store.clear_memory()
    stored = F.fit(model, lm, hw)
    store.clear_memory()
    assert (store.written - before[0], store.loaded - before[1]) == (1, 1)
    for name in ("vertices", "landmarks_2d", "energy", "intrinsics"):
        np.testing.assert_allclose(getattr(stored, name), getattr(plain, name), rtol=1e-6, atol=1e-6, err_msg=name)
    for name in ("beta", "t", "q", "f_s", "delta_p"):
        np.testing.assert_allclose(getattr(stored.params, name), getattr(plain.params, name), rtol=1e-6, atol=1e-6, err_msg=name)
    # and both found the pose that made the landmarks (independent: OpenCV's projection; the 17 jaw
    # points slide along the silhouette, so the 51 inner points are compared)
    inner = np.sqrt(np.sum((np.asarray(stored.landmarks_2d)[17:] - lm[17:]) ** 2, axis=1))
    assert np.sqrt(np.mean(inner ** 2)) < 0.5


def test_arrays_are_made_once_keyed_by_their_inputs_and_rewritten_when_damaged(tmp_path):
    calls = []

    def make(v):
        def inner():
            calls.append(v)
            return {"x": np.arange(4.0) * v, "n": np.int64(v)}
        return inner

    off = E.ExportStore()
    assert E.arrays("t", (np.ones(3),), make(2.0), store=off)["n"] == 2 and len(calls) == 1
    store = E.ExportStore(directory=tmp_path)
    a = E.arrays("t", (np.ones(3), 0.5), make(3.0), store=store)
    b = E.arrays("t", (np.ones(3), 0.5), make(99.0), store=store)  # read back: make is not called
    np.testing.assert_array_equal(b["x"], np.arange(4.0) * 3.0)
    assert int(b["n"]) == 3 and len(calls) == 2 and (store.written, store.loaded) == (1, 1)
    E.arrays("t", (np.ones(3), 0.25), make(4.0), store=store)  # other inputs: another file
    E.arrays("t", (np.ones(3, np.float32), 0.5), make(5.0), store=store)  # same values, other dtype
    assert len(calls) == 4 and len(list(tmp_path.glob("t-*.npz"))) == 3
    path = next(p for p in tmp_path.glob("t-*.npz") if np.load(p)["n"] == 3)
    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="could not be read"):
        c = E.arrays("t", (np.ones(3), 0.5), make(3.0), store=store)
    np.testing.assert_array_equal(c["x"], a["x"])
    assert int(np.load(path)["n"]) == 3


@pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")
def test_prepare_reads_the_condensed_corrective_system_back_from_the_store(tmp_path, monkeypatch):
    """A second process's ``prepare`` loads the corrective field's constants instead of recomputing
    them; what it loads is A^{-1} at the handles (checked against scipy's sparse solve)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from digitaltwin_jax.fitting import problem as P
    from digitaltwin_jax.geometry.laplacian import normalized_laplacian

    model = load_head_model("low")
    cfg = FitConfig()
    store = E.shared_store()
    monkeypatch.setattr(store, "directory", tmp_path)
    monkeypatch.setattr(P, "_PROBLEM_CACHE", {})
    first = P.prepare(model, cfg, corrective=True)
    assert len(list(tmp_path.glob("condensed-*.npz"))) == 1
    P._PROBLEM_CACHE.clear()

    def fail(*a, **k):
        raise AssertionError("condense_corrective ran although its arrays are on disk")

    monkeypatch.setattr(P.corr, "condense_corrective", fail)
    second = P.prepare(model, cfg, corrective=True)
    cc = second.corrective
    for name in ("ainv_hh", "y_h", "r_q"):
        np.testing.assert_array_equal(np.asarray(getattr(cc, name)), np.asarray(getattr(first.corrective, name)))
    assert cc.num_cg == first.corrective.num_cg and cc.lambda_delta == cfg.lambda_delta
    L = normalized_laplacian(model.vertices, model.faces, cfg.laplacian)
    A = (L.T @ L + cfg.lambda_delta * sp.eye(L.shape[0])).tocsc()
    h = np.asarray(second.handles)[:12]
    e = np.zeros((L.shape[0], h.size))
    e[h, np.arange(h.size)] = 1.0
    ref = spla.spsolve(A, e)[h]
    np.testing.assert_allclose(np.asarray(cc.ainv_hh)[:12, :12], ref, rtol=1e-6, atol=1e-9)
