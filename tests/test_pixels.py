"""Images as numbers: regions, the C×H×W tensor, one pixel, colour spaces against independent
references (the standard library's colorsys, published sRGB values, Pillow), the drawings, the
widget and the Pixels tab's handlers."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from vlmlab.errors import LabError
from vlmlab.pixels import (
    COLOR_SPACES,
    channel_planes,
    convert_color_space,
    pick_region,
    pixel_in_color_spaces,
    read_pixel,
    region_around,
    rgb_pixels,
    shrink,
    tensor_facts,
)
from vlmlab.pixels.render import (
    color_table_html,
    describe_tensor,
    draw_channel_planes,
    draw_color_planes,
    draw_number_grid,
    draw_region_box,
    draw_region_grids,
    format_number,
    preview_scale,
)


@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    """64 random colours plus the eight corners of the RGB cube, as a (9, 8, 3) image."""
    rng = np.random.default_rng(0)
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)])
    return (
        np.concatenate([rng.integers(0, 256, (64, 3)), corners]).astype(np.uint8).reshape(9, 8, 3)
    )


def test_a_region_is_the_photo_s_numbers_and_stays_inside(chelsea):
    rgb = np.asarray(chelsea)
    region = pick_region(chelsea, 100, 200, 12)
    assert (region.top, region.left, region.size) == (100, 200, (12, 12))
    np.testing.assert_array_equal(region.rgb, rgb[100:112, 200:212])
    np.testing.assert_array_equal(region.gray, np.asarray(chelsea.convert("L"))[100:112, 200:212])
    corner = pick_region(chelsea, 10_000, -50, 16)  # moved inside the 300×451 photo
    assert (corner.top, corner.left) == (284, 0)
    centred = region_around(chelsea, 150, 225, 8)
    assert (centred.top, centred.left) == (146, 221)
    for bad in (0, 17, 2.5, True):
        with pytest.raises(LabError, match="region|whole number"):
            pick_region(chelsea, 0, 0, bad)


def test_the_tensor_layout_and_one_pixel(chelsea):
    rgb = np.asarray(chelsea)
    planes = channel_planes(chelsea)
    assert planes.shape == (3, 300, 451) and planes.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(planes[c], rgb[..., c])
    pixel = read_pixel(chelsea, 120, 300)
    assert pixel.rgb == tuple(int(v) for v in rgb[120, 300])
    np.testing.assert_allclose(pixel.floats, rgb[120, 300] / 255, atol=1e-7)
    assert pixel.gray == chelsea.convert("L").getpixel((300, 120))
    with pytest.raises(LabError, match=r"Pixel \(300, 0\) is outside the 300×451 image"):
        read_pixel(chelsea, 300, 0)
    text = describe_tensor(tensor_facts(chelsea, 120, 300))
    assert "(H, W, C) = (300, 451, 3)" in text and "(C, H, W) = (3, 300, 451)" in text
    assert f"= **{pixel.gray}**" in text and "float32" in text


def test_hsv_and_hsl_match_the_standard_library(colours):
    flat = colours.reshape(-1, 3) / 255
    hsv = convert_color_space(colours, "HSV")
    hsl = convert_color_space(colours, "HSL")
    for i, (r, g, b) in enumerate(flat):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        got = [p.values.reshape(-1)[i] for p in hsv.planes]
        assert abs(got[0] - h * 360) < 0.5
        np.testing.assert_allclose(got[1:], [s, v], atol=2e-3)
        h, lightness, s = colorsys.rgb_to_hls(r, g, b)
        got = [p.values.reshape(-1)[i] for p in hsl.planes]
        if s > 1e-6:  # hue is undefined for grays
            assert min(abs(got[0] - h * 360), 360 - abs(got[0] - h * 360)) < 0.1
        np.testing.assert_allclose(got[1:], [s, lightness], atol=2e-3)
    assert [p.name for p in hsl.planes] == ["H", "S", "L"]


def test_lab_luv_xyz_give_the_published_srgb_values():
    red = pixel_in_color_spaces((255, 0, 0))
    white = pixel_in_color_spaces((255, 255, 255))
    np.testing.assert_allclose([v for _, v in red["Lab"]], [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose([v for _, v in red["LUV"]], [53.24, 175.01, 37.76], atol=0.05)
    np.testing.assert_allclose([v for _, v in red["XYZ"]], [0.4125, 0.2127, 0.0193], atol=2e-4)
    np.testing.assert_allclose([v for _, v in white["XYZ"]], [0.9505, 1.0, 1.089], atol=1e-3)
    np.testing.assert_allclose([v for _, v in white["Lab"]], [100, 0, 0], atol=0.01)


def test_cmyk_extracts_black_from_pillow_s_cmy(colours):
    assert [v for _, v in pixel_in_color_spaces((255, 0, 0))["CMYK"]] == [0, 1, 1, 0]
    assert [v for _, v in pixel_in_color_spaces((0, 0, 0))["CMYK"]] == [0, 0, 0, 1]
    assert [v for _, v in pixel_in_color_spaces((255, 255, 255))["CMYK"]] == [0, 0, 0, 0]
    c, m, y, k = (p.values for p in convert_color_space(colours, "CMYK").planes)
    np.testing.assert_allclose(1 - k, colours.max(axis=-1) / 255, atol=1e-6)
    pillow = np.asarray(Image.fromarray(colours).convert("CMYK"), np.float32)[..., :3] / 255
    for ink, plain in zip((c, m, y), np.moveaxis(pillow, -1, 0)):
        np.testing.assert_allclose(ink * (1 - k) + k, plain, atol=1e-5)  # undo black extraction


def test_every_plane_stays_inside_its_stated_range(colours):
    for space in COLOR_SPACES:
        view = convert_color_space(colours, space)
        assert len(view.planes) == len(COLOR_SPACES[space][0]) and view.library
        for plane in view.planes:
            assert plane.values.shape == colours.shape[:2] and plane.values.dtype == np.float32
            span = plane.high - plane.low
            assert plane.low - 0.01 * span <= plane.values.min()
            assert plane.values.max() <= plane.high + 0.01 * span
    lab = convert_color_space(colours, "Lab").planes
    assert lab[1].low < -80 and lab[1].high > 90  # a*: measured over sRGB, not guessed
    with pytest.raises(LabError, match="colour space must be one of RGB, HSV, HSL"):
        convert_color_space(colours, "YUV")


def test_inputs_of_every_kind(chelsea):
    grey = chelsea.convert("L")
    assert rgb_pixels(grey).shape == (300, 451, 3)
    np.testing.assert_array_equal(rgb_pixels(np.asarray(chelsea)), np.asarray(chelsea))
    assert shrink(chelsea, 100).size == (100, 67)


def test_drawings(chelsea):
    assert [format_number(v) for v in (3, -0.0, 28.3333, 0.111111, 1234.5, -7.25)] == [
        "3",
        "0",
        "28.3",
        "0.11",
        "1234",
        "-7.25",
    ]
    values = np.array([[0, 255], [128, 7]])
    grid = np.asarray(draw_number_grid(values, cell=30))
    assert grid.shape == (60, 60, 3)
    assert grid[3, 33].tolist() == [255, 255, 255]  # the cell's colour is its value
    assert grid[33, 3].tolist() == [128, 128, 128]
    cell = grid[1:30, 31:60]
    assert (cell < 100).any()  # the number is written on it
    region = pick_region(chelsea, 100, 200, 8)
    grids = draw_region_grids(region, mark=(104, 204))
    assert grids.width > 2 * 8 * 26 and grids.height > 2 * 8 * 26
    big = Image.new("RGB", (1280, 640))
    assert preview_scale(big.size) == 2.0 and draw_region_box(
        big, pick_region(big, 0, 0, 4)
    ).size == (640, 320)
    assert draw_channel_planes(chelsea).width > 3 * 200
    assert draw_color_planes(convert_color_space(shrink(chelsea, 50), "CMYK")).width > 4 * 50
    html = color_table_html(pixel_in_color_spaces((10, 20, 30)))
    assert html.count("<tr>") == len(COLOR_SPACES) and "K =" in html


def test_pixel_inspector_controls_change_the_output(chelsea):
    from widgets.pixels import PixelInspector

    from vlmlab.render import png_bytes as png

    from vlmlab.pixels.render import PLANE_SIDE

    inspector = PixelInspector(chelsea)  # top 130, left 200, a 10×10 region
    inspector.top.value = 20  # the region moves up: its middle pixel is (25, 205)
    region = pick_region(chelsea, 20, 200, 10)
    assert inspector.grids.value == png(draw_region_grids(region, mark=(25, 205), cell=30))
    r, g, b = np.asarray(chelsea)[25, 205]
    assert f"Pixel (row 25, column 205): uint8 <b>[{r}, {g}, {b}]</b>" in inspector.facts.value
    inspector.space.value = "Lab"
    lab = convert_color_space(shrink(chelsea, PLANE_SIDE), "Lab")
    assert inspector.space_planes.value == png(draw_color_planes(lab))
    assert "rgb2lab" in inspector.space_note.value
    inspector.size.value = 16
    assert "(row 28, column 208)" in inspector.pixel_table.value


def test_pixels_tab_handlers(tmp_path):
    from types import SimpleNamespace

    from demo import pixels_tab

    path = tmp_path / "photo.png"
    Image.new("RGB", (1280, 640), (10, 200, 30)).save(path)
    region = pixels_tab.show_region(str(path), 5, 1279, 4)
    preview, facts, table = region["preview"], region["facts"], region["pixel_table"]
    assert preview.size == (640, 320) and "[10, 200, 30]" in facts and "G = 200" in table
    space = pixels_tab.show_color_space(str(path), "HSL")
    assert space["space_planes"].width > 0 and "OpenCV" in space["space_note"]
    picked = pixels_tab.pick_at(str(path), 8, SimpleNamespace(index=[100, 50]))
    assert picked == {"top": 96, "left": 196}  # the click × 2 (preview scale), centred

    # A page opening keeps the sliders, pulled inside a smaller photo; a new photo puts the
    # region in its middle; a cleared photo is said in place.
    Image.new("RGB", (20, 10), (10, 200, 30)).save(path)
    views = pixels_tab.page_opened(False, str(path), 130, 200, 4, "HSV")
    planes, top, left, facts, space_planes = (
        views[name] for name in ("planes", "top", "left", "facts", "space_planes")
    )
    assert (top.maximum, top.value, left.maximum, left.value) == (9, 6, 19, 16)
    assert planes.width > 0 and space_planes.width > 0 and "[10, 200, 30]" in facts
    assert pixels_tab.page_opened(True, str(path), 130, 200, 4, "HSV") == {}  # nothing changes
    Image.new("RGB", (1000, 600), (10, 200, 30)).save(path)
    views = pixels_tab.new_photo(str(path), 130, 200, 10, "HSV")
    top, left, preview = views["top"], views["left"], views["preview"]
    assert (top.value, left.value) == (295, 495)  # the 10×10 region in the middle
    # Its outline is centred there and wide enough to see on the preview (scale 1.5625).
    rows, columns = np.nonzero((np.asarray(preview) == (255, 230, 0)).all(axis=-1))
    assert abs((rows.min() + rows.max()) / 2 - 300 / 1.5625) < 2
    assert abs((columns.min() + columns.max()) / 2 - 500 / 1.5625) < 2
    assert columns.max() - columns.min() >= 20 and rows.max() - rows.min() >= 20
    empty = pixels_tab.new_photo(None, 5, 5, 4, "HSL")
    assert empty["planes"] is None and empty["preview"] is None
    assert "Please pick a sample photo" in empty["facts"] and "top" not in empty
