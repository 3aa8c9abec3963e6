"""End to end: the example photo -> avatar files; the Python API on arrays; bad inputs via the API."""
import json
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax import errors
from digitaltwin_jax.io import read_glb, read_obj
from digitaltwin_jax.io.images import read_image
from digitaltwin_jax.pipeline import AvatarConfig, reconstruct, reconstruct_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
TEX = 256  # small texture keeps CI fast; the default 2048 is exercised by the README command


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("avatar") / "astronaut"
    reconstruct_file(EXAMPLE, out, config=AvatarConfig(texture_size=TEX, shape_source="fit", preview_size=128))
    return out


def test_outputs_exist_and_load(outdir):
    names = sorted(p.name for p in outdir.iterdir())
    assert names == ["diffuse.png", "eyes.png", "head.glb", "head.mtl", "head.obj", "preview.png", "report.json"]
    tex = read_image(outdir / "diffuse.png")
    assert tex.shape == (TEX, TEX, 3)
    obj = read_obj(outdir / "head.obj")
    faces, uv_faces = obj.triangles()
    from digitaltwin_jax import load_head_model

    model = load_head_model("low")
    # the head first, then the eyeballs (their own object and material)
    V, F = model.vertices.shape[0], model.faces.shape[0]
    assert obj.vertices.shape[0] > V and obj.vertices.shape[1] == 3
    np.testing.assert_array_equal(faces[:F], model.faces)
    assert faces[F:].min() >= V
    assert np.all(np.isfinite(obj.vertices))
    mtl = (outdir / "head.mtl").read_text()
    assert "map_Kd diffuse.png" in mtl and "newmtl eyes" in mtl and "map_Kd eyes.png" in mtl
    assert read_image(outdir / "eyes.png").shape[2] == 3
    glb = read_glb(outdir / "head.glb")
    assert glb["morph_names"] == list(model.expression_names)
    assert glb["morph_targets"].shape[0] == model.num_expressions
    assert np.all(np.isfinite(glb["positions"])) and np.all(np.isfinite(glb["morph_targets"]))
    assert glb["image"][:4] == b"\x89PNG"
    w = np.asarray(glb["morph_weights"])
    assert np.all((w >= 0) & (w <= 1))
    # the GLB holds the neutral head in metres; adding the weighted morph targets gives head.obj (mm)
    posed = glb["positions"] + np.tensordot(w, glb["morph_targets"], axes=1)
    split = glb["indices"]
    # map glTF split vertices back to model vertices through the faces
    v_of = np.zeros(len(glb["positions"]), dtype=int)
    v_of[split.ravel()] = model.faces.ravel()
    np.testing.assert_allclose(posed * 1e3, obj.vertices[v_of], atol=0.05)
    assert [m["name"] for m in glb["json"]["meshes"]] == ["head", "eyes"]
    assert [m["name"] for m in glb["json"]["materials"]] == ["skin", "eyes"]
    preview = read_image(outdir / "preview.png")
    assert preview.shape == (128, 5 * 128, 3)


def test_report_contents(outdir):
    r = json.loads((outdir / "report.json").read_text())
    lm3d = np.asarray(r["landmarks_3d"])
    assert lm3d.shape == (68, 3) and np.all(np.isfinite(lm3d))
    assert np.asarray(r["landmarks_2d"]).shape == (68, 2)
    # 68-landmark reprojection RMSE on the 512 px example photo.  Threshold: dlib's own landmark noise
    # is ~2-5 % of the eye distance (here ~90 px -> 2-4 px), and the model cannot follow every
    # detector jitter; 3.5 px (0.7 % of the image) is a fit that sits on the detections.  (The
    # calibrated expression prior, sigma 0.05, keeps a neutral face neutral at some cost in
    # reprojection: 3.12 px here, below 3 px with the former sigma 0.3.)
    assert r["landmark_reprojection_rmse_px"] < 3.5
    # the head is head-sized: outer eye corners 80-110 mm apart in the fitted head frame
    assert 80.0 < np.linalg.norm(lm3d[36] - lm3d[45]) < 110.0
    assert set(r["timings_s"]) >= {"detect", "embed", "shape", "fit", "texture", "eyes"}
    assert r["eyes"]["sampled_from_photo"] and r["eyes"]["eye_pixels"] > 50
    iris, sclera = np.asarray(r["eyes"]["iris_rgb"]), np.asarray(r["eyes"]["sclera_rgb"])
    assert iris.mean() < sclera.mean()  # the iris is darker than the white of the eye
    assert r["camera"]["K"][2] == [0.0, 0.0, 1.0]
    assert all(0.0 <= v <= 1.0 for v in r["expression_weights"].values())
    assert r["versions"]["digitaltwin_jax"]


def test_existing_output_is_not_clobbered(outdir):
    with pytest.raises(FileExistsError):
        reconstruct_file(EXAMPLE, outdir, config=AvatarConfig(texture_size=TEX))


def test_api_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        reconstruct(np.zeros((10, 10), np.uint8))
    with pytest.raises(errors.NoFaceError):
        reconstruct(np.full((200, 200, 3), 127, np.uint8), config=AvatarConfig(texture_size=TEX))
    bad = tmp_path / "x.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(errors.ImageReadError, match="x.png"):
        reconstruct_file(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="shape_source"):
        reconstruct(read_image(EXAMPLE), config=AvatarConfig(shape_source="magic", texture_size=TEX))


def test_same_photo_and_seed_give_byte_identical_files(outdir, tmp_path):
    # a second reconstruction with the fixture's configuration (compiled already: ~1 s)
    again = tmp_path / "again"
    reconstruct_file(EXAMPLE, again, config=AvatarConfig(texture_size=TEX, shape_source="fit", preview_size=128))
    for name in ("head.obj", "head.mtl", "diffuse.png", "eyes.png", "head.glb", "preview.png"):
        assert (again / name).read_bytes() == (outdir / name).read_bytes(), name


def test_report_lists_stages_and_no_warnings(outdir):
    r = json.loads((outdir / "report.json").read_text())
    assert r["shape_source"] == "fit"
    assert r["stages"]["shape"] == {"requested": "fit", "used": "fit"}
    assert r["warnings"] == []


def test_failed_shape_source_is_a_listed_warning(tmp_path, capsys):
    import dataclasses

    from digitaltwin_jax.pipeline import default_stages

    def failing(image, face, embedding, model):  # e.g. the identity embedding could not be computed
        return None

    failing.name = "regressor"
    stages = dataclasses.replace(default_stages(AvatarConfig(shape_source="fit")), shape=failing)
    av = reconstruct(read_image(EXAMPLE), config=AvatarConfig(texture_size=64), stages=stages)
    assert av.info["shape_source"] == "fit"
    assert av.info["stages"]["shape"] == {"requested": "regressor", "used": "fit"}
    assert len(av.info["warnings"]) == 1 and "'regressor' gave no shape" in av.info["warnings"][0]


def test_auto_falls_back_loudly_when_its_source_cannot_load(monkeypatch):
    from digitaltwin_jax import pipeline
    from digitaltwin_jax.regressor import guard as guard_mod

    def missing(folder=None):
        raise FileNotFoundError("regressor guard file guard.npz is missing")

    monkeypatch.setattr(pipeline, "AUTO_SHAPE_SOURCE", "guarded")
    monkeypatch.setattr(guard_mod, "load_guard", missing)
    warns = []
    src = pipeline._shape_source("auto", warns)
    assert src is pipeline._template_shape
    assert len(warns) == 1 and "guard.npz is missing" in warns[0] and "template" in warns[0]


def test_auto_is_what_the_fidelity_benchmark_admits():
    """The shipped ``auto`` must be eligible under the benchmark's default rule in the recorded run."""
    from digitaltwin_jax.pipeline import AUTO_SHAPE_SOURCE, BENCHMARK_METHOD, SHAPE_SOURCES

    rec = Path(__file__).resolve().parents[1] / "experiments" / "results" / "fidelity_benchmark.json"
    res = json.loads(rec.read_text())
    assert AUTO_SHAPE_SOURCE in SHAPE_SOURCES
    assert res["decision"][BENCHMARK_METHOD[AUTO_SHAPE_SOURCE]]["eligible"] is True


def test_failed_embedding_is_a_listed_warning():
    import dataclasses

    from digitaltwin_jax.pipeline import default_stages

    def broken(image, face):
        raise RuntimeError("encoder crashed")

    stages = dataclasses.replace(default_stages(AvatarConfig(shape_source="fit")), embed=broken)
    av = reconstruct(read_image(EXAMPLE), config=AvatarConfig(texture_size=64), stages=stages)
    assert len(av.info["warnings"]) == 1 and "encoder crashed" in av.info["warnings"][0]
    assert av.info["texture"]["bank_rule"] != "identity"
    assert np.all(np.isfinite(av.vertices))


def test_avatar_config_carries_fit_and_texture_configs(monkeypatch):
    """AvatarConfig.fit / .texture reach the default stages: with the expression switched off the
    fitted blendshape weights are exactly 0 (the example photo smiles: with the default fit they are
    not), and build_texture receives the given TextureConfig with the size of ``texture_size``."""
    import digitaltwin_jax.texture.pipeline as texpipe
    from digitaltwin_jax.fitting import FitConfig
    from digitaltwin_jax.texture.pipeline import TextureConfig

    seen = []
    original = texpipe.build_texture

    def spy(*args, **kwargs):
        seen.append(kwargs["config"])
        return original(*args, **kwargs)

    monkeypatch.setattr(texpipe, "build_texture", spy)
    photo = read_image(EXAMPLE)
    base = AvatarConfig(texture_size=64, shape_source="template")
    smiling = reconstruct(photo, config=base)
    assert float(np.sum(smiling.expression_weights)) > 0.1
    cfg = AvatarConfig(texture_size=64, shape_source="template", fit=FitConfig(fit_expression=False),
                       texture=TextureConfig(blend_threshold=0.9, size=999))
    still = reconstruct(photo, config=cfg)
    assert np.all(still.expression_weights == 0.0)
    assert seen[-1].blend_threshold == 0.9 and seen[-1].size == 64
    assert seen[0].blend_threshold == TextureConfig().blend_threshold
