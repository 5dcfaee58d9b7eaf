"""Every figure can be kept, from both faces through one engine (`vlmlab.export`): the image a
channel wants (CNN tab), the lecture path's two cited figures, and each widget's "Save figures"
button — PNG at twice the size with its caption inside, SVG where matplotlib draws."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vlmlab import cnn
from vlmlab.lecture.render import FIGURES, FILE_NAMES
from vlmlab.render import figure_to_image


def png(path) -> Image.Image:
    return Image.open(io.BytesIO(path.read_bytes()))


def shown(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(bytes(data)))


def event(demo, name: str, label: str):
    """The demo's event whose handler is `name` and that reads the component labelled `label`."""
    for fn in demo.fns.values():
        if getattr(fn.fn, "__name__", "") == name and any(
            getattr(block, "label", None) == label for block in fn.inputs
        ):
            return fn
    raise AssertionError(f"no {name} event reads {label!r}")


@pytest.fixture(scope="module")
def cnn_demo():
    from demo import build_demo

    return build_demo(("cnn",))


def test_the_image_a_channel_wants_is_among_the_cnn_tabs_figures_to_keep(cnn_demo, tmp_path):
    layer = cnn.layer_names("mobilenet_v2")[9]
    frames = list(cnn.visualize_steps("mobilenet_v2", layer, 12, steps=2, size=64))
    wanted = frames[-1].image
    save = event(cnn_demo, "save_figures", "The image it wants, forming")
    values = []
    for block in save.inputs:  # as the browser sends them: the pictures shown, the settings
        label = getattr(block, "label", None)
        values.append({
            "The image it wants, forming": wanted, "Network": "mobilenet_v2", "Layer": layer,
            "Channel (click a tile)": 12, "Direction": "want", "Steps": 2,
        }.get(label))  # fmt: skip
    paths, captions = save.fn(*values)
    names = [path.split("/")[-1] for path in paths]
    stem = f"featurevis_mobilenet-v2_{layer}_channel12_want_steps2"
    assert names == [f"{stem}.png"]  # a Pillow picture: no SVG
    saved = Image.open(paths[0])
    assert saved.size == (2 * wanted.width, 2 * wanted.height)
    assert saved.text["Title"] == stem
    line = f"The image a channel wants — mobilenet_v2, layer {layer}, channel 12, direction want"
    assert saved.text["Description"].startswith(line) and line in captions


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_the_lecture_paths_cited_figures_can_be_kept_with_their_sources(name, cnn_demo):
    from demo.links import save_step_figure
    from vlmlab import lecture

    number = next(i + 1 for i, step in enumerate(lecture.STEPS) if step.figure == name)
    draw, sources = FIGURES[name]
    picture = figure_to_image(draw())
    event(cnn_demo, "save_step_figure", None)  # the lecture panel offers it
    paths = save_step_figure(number, picture)
    assert [p.split("/")[-1] for p in paths] == [f"{FILE_NAMES[name]}.png", f"{FILE_NAMES[name]}.svg"]
    saved = Image.open(paths[0])
    assert saved.size == (2 * picture.width, 2 * picture.height)
    assert saved.text["Description"] == sources  # what it shows and where the numbers are from
    svg = open(paths[1], "rb").read()
    assert b"<svg" in svg and b"Dosovitskiy" in svg if name == "vit_data" else b"LAION" in svg
    with pytest.raises(Exception, match="no figure"):
        save_step_figure(1, picture)  # pixels as a matrix: no figure to keep


def test_a_widgets_save_button_writes_its_figures_through_the_same_engine(
    chelsea, tmp_path, monkeypatch
):
    from widgets.cnn import FeatureMapBrowser
    from widgets.pixels import PixelInspector

    monkeypatch.chdir(tmp_path)
    browser = FeatureMapBrowser(chelsea, "mobilenet_v2")
    browser.channel.value = 3
    assert browser.save_button in browser.children[-1].children  # under the widget
    browser.save_button.click()
    layer = browser.layer.value
    stem = f"cnn_mobilenet-v2_{layer}_channel3"
    written = sorted(path.name for path in (tmp_path / "figures").iterdir())
    assert written == sorted(
        f"{stem}_{what}.png" for what in ("feature-maps", "channel", "channel-over-the-photo")
    )
    assert f"{stem}_feature-maps.png" in browser.saved.value
    kept = png(tmp_path / "figures" / f"{stem}_channel.png")
    large = shown(browser.large.value)
    assert kept.size == (2 * large.width, 2 * large.height)
    assert kept.text["Description"] == f"Channel — mobilenet_v2, layer {layer}, channel 3"

    # Nothing drawn yet: the reason, not a traceback.
    pixels = PixelInspector(chelsea)
    for picture in (pixels.preview, pixels.grids, pixels.planes, pixels.space_planes):
        picture.value = b""
    pixels.save_button.click()
    assert "no figures here yet" in pixels.saved.value


def test_a_matplotlib_figure_in_a_widget_is_kept_as_svg_too(chelsea, tmp_path):
    from widgets.vit import PatchExplorer

    explorer = PatchExplorer(chelsea)
    paths = explorer.save_figures(tmp_path)
    names = [path.name for path in paths]
    assert any(name.endswith(".svg") for name in names), names  # the patch steps, matplotlib
    for path in paths:
        assert path.name.startswith("vit_")
    steps = next(path for path in paths if path.suffix == ".png" and "steps" in path.name)
    assert png(steps).size == tuple(2 * side for side in shown(explorer.steps.value).size)
