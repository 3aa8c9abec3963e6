"""Shape regressor forward pass (paper section 3.3): jit-compiled Flax decoder vs the same MLP in numpy.

Cases: one embedding (the avatar command's use) and batches of 64 / 1024 (training-time evaluation).
The decoder is the shipped one when present, else a paper-sized one (128 -> 128 -> 200 -> 8,700)
with a random PCA basis; the numpy baseline runs the identical float32 matrix products
(``(e - mu) / sd -> W1 -> ELU -> W2 -> W3``) with the same weights.  Compile time is reported
separately in the notes, not in ``ours_ms``.
"""
from __future__ import annotations

import time

import numpy as np

AREA = "regressor"


def _median_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def _decoder():
    import jax

    from digitaltwin_jax.regressor.decoder import DecoderConfig, PCABasis, init_decoder
    from digitaltwin_jax.regressor.weights import load_regressor

    try:
        reg = load_regressor()
        return reg.config, reg.variables, "shipped"
    except FileNotFoundError:
        cfg = DecoderConfig()
        rng = np.random.default_rng(0)
        comps = np.linalg.qr(rng.normal(size=(3 * cfg.num_vertices, cfg.num_components)))[0].T
        pca = PCABasis(rng.normal(size=3 * cfg.num_vertices).astype(np.float32), comps.astype(np.float32),
                       np.ones(cfg.num_components, np.float32), 1.0)
        return cfg, init_decoder(jax.random.key(0), cfg, pca), "random"


def _numpy_forward(variables):
    p = {k: {n: np.asarray(a, np.float32) for n, a in v.items()} for k, v in variables["params"].items()}
    mu = np.asarray(variables["constants"]["input_mean"], np.float32)
    sd = np.asarray(variables["constants"]["input_std"], np.float32)

    def f(e):
        x = (e - mu) / sd
        x = x @ p["fc1"]["kernel"] + p["fc1"]["bias"]
        x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
        x = x @ p["fc2"]["kernel"] + p["fc2"]["bias"]
        x = x @ p["fc3"]["kernel"] + p["fc3"]["bias"]
        return x.reshape(x.shape[:-1] + (-1, 3))

    return f


def run(quick: bool = False) -> list[dict]:
    import jax

    from digitaltwin_jax.regressor.decoder import ShapeDecoder

    cfg, variables, which = _decoder()
    if cfg.activation != "elu":
        raise RuntimeError(f"numpy baseline implements ELU only, decoder uses {cfg.activation}")
    apply = jax.jit(ShapeDecoder(cfg).apply)
    ref = _numpy_forward(variables)
    rows = []
    repeats = 5 if quick else 30
    rng = np.random.default_rng(1)
    for batch in (1, 64, 1024):
        e = rng.normal(size=(batch, cfg.embedding_dim)).astype(np.float32)
        t = time.perf_counter()
        out = np.asarray(apply(variables, e))
        compile_ms = 1e3 * (time.perf_counter() - t)
        err = float(np.max(np.abs(out - ref(e))))
        ours = _median_ms(lambda: apply(variables, e).block_until_ready(), repeats)
        base = _median_ms(lambda: ref(e), repeats)
        rows.append({
            "area": AREA,
            "case": f"decoder forward, batch {batch} ({which} weights, V={cfg.num_vertices})",
            "ours_ms": ours,
            "baseline": "numpy float32 MLP",
            "baseline_ms": base,
            "target": "single < 5 ms",
            "notes": f"first call incl. compile {compile_ms:.0f} ms; max |diff| {err:.2e} mm",
        })
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
