"""``digitaltwin_jax.render`` keeps its public names after its submodules are imported (the rasteriser's
module and function share the name ``rasterize``)."""
import importlib


def test_rasterize_name_is_the_function_after_the_submodule_is_imported():
    importlib.import_module("digitaltwin_jax.render.rasterize")
    importlib.import_module("digitaltwin_jax.texture.uv")  # imports the submodule by its dotted name
    import digitaltwin_jax.render as render
    from digitaltwin_jax.geometry.rasterize import rasterize

    assert render.rasterize is rasterize
