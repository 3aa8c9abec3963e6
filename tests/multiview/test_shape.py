"""Starting shape, same-person check, camera groups and EXIF keys of a group of photos."""
import numpy as np
import pytest

from digitaltwin_jax.multiview.reconstruct import exif_camera_key
from digitaltwin_jax.multiview.shape import (DifferentPeopleError, camera_groups, check_same_person, combined_shape,
                                             embedding_distances)


class _Model:
    vertices = np.zeros((4, 3), np.float32)


def test_combined_shape_is_the_regressor_at_the_mean_embedding():
    e = np.array([[0.0, 1.0], [2.0, 3.0], [np.nan, 0.0]])
    reg = lambda x: np.asarray(x)[:, None, :1].repeat(4, 1).repeat(3, 2) * 10.0  # noqa: E731
    out = combined_shape(_Model(), e, reg)
    np.testing.assert_allclose(out, np.full((4, 3), 10.0))  # mean of the finite rows: (1, 2)
    with pytest.raises(ValueError, match="no finite"):
        combined_shape(_Model(), np.full((2, 2), np.nan), reg)


def test_same_person_threshold_and_names():
    e = np.array([[0.0, 0.0], [0.3, 0.4], [0.0, 0.59]])
    d = check_same_person(e)
    np.testing.assert_allclose(d, embedding_distances(e))
    assert d[0, 1] == pytest.approx(0.5)
    with pytest.raises(DifferentPeopleError, match="b.jpg and c.jpg"):
        check_same_person(np.array([[0.0, 0.0], [0.0, 0.5], [0.0, -0.2]]), ["a.jpg", "b.jpg", "c.jpg"])


def test_camera_groups():
    g = camera_groups([("Canon", "EOS", 50.0), None, ("Canon", "EOS", 50.0), ("Canon", "EOS", 35.0), None])
    assert g[0] == g[2] and len(set(g.tolist())) == 4  # the unknowns each alone, 35 mm apart


def test_exif_camera_key(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (16, 16), (120, 90, 80))
    ex = Image.Exif()
    ex[0x010F], ex[0x0110] = "Canon", "EOS 5D"
    ex.get_ifd(0x8769)[0x920A] = 50.0
    img.save(tmp_path / "a.jpg", exif=ex)
    img.save(tmp_path / "b.jpg")
    assert exif_camera_key(tmp_path / "a.jpg") == ("Canon", "EOS 5D", 50.0)
    assert exif_camera_key(tmp_path / "b.jpg") is None
    assert exif_camera_key(tmp_path / "missing.jpg") is None
