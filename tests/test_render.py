"""The drawing helpers every tab's redraw leans on: colour maps, tile grids, photo fingerprints."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vlmlab.cache import fingerprint, photo_fingerprint
from vlmlab.cnn.render import GAP, LEVELS, assemble, backdrop, channel_overlay, palette
from vlmlab.render import colorize


@pytest.mark.parametrize("cmap", ["viridis", "inferno", "jet", "gray", "coolwarm"])
def test_colorize_matches_the_matplotlib_colour_map(cmap):
    values = np.random.default_rng(0).normal(size=(40, 30)).astype(np.float32)
    for vmin, vmax in ((None, None), (-0.5, 0.5), (0.0, 3.0)):
        lo = values.min() if vmin is None else vmin
        hi = values.max() if vmax is None else vmax
        expected = matplotlib.colormaps[cmap](np.clip((values - lo) / (hi - lo), 0, 1), bytes=True)
        np.testing.assert_array_equal(
            colorize(values, cmap, vmin=vmin, vmax=vmax), expected[..., :3]
        )


def test_colorize_draws_a_flat_map_in_the_lowest_colour():
    lowest = matplotlib.colormaps["viridis"](0, bytes=True)[:3]
    assert (colorize(np.full((3, 4), 7.0)) == lowest).all()


def naive_grid(tiles: np.ndarray, columns: int, fill, factor: int) -> np.ndarray:
    big = tiles.repeat(factor, axis=1).repeat(factor, axis=2)
    n, h, w = big.shape[:3]
    rows = -(-n // columns)
    grid = np.empty((rows * (h + GAP) + GAP, columns * (w + GAP) + GAP) + big.shape[3:], np.uint8)
    grid[...] = fill
    for i, t in enumerate(big):
        r, c = divmod(i, columns)
        grid[GAP + r * (h + GAP) : GAP + r * (h + GAP) + h, GAP + c * (w + GAP) :][:, :w] = t
    return grid


@pytest.mark.parametrize(
    ("shape", "columns", "factor", "fill"),
    [
        ((7, 3, 5), 3, 4, 254),  # a short last row, enlarged
        ((9, 6, 6), 3, 1, 254),  # full rows, as they are
        ((5, 4, 4, 3), 4, 3, 255),  # RGB tiles (learned filters)
    ],
)
def test_assemble_places_every_tile_enlarged_in_its_cell(shape, columns, factor, fill):
    tiles = np.random.default_rng(1).integers(0, 250, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(
        assemble(tiles, columns, fill, factor), naive_grid(tiles, columns, fill, factor)
    )


def test_photo_fingerprint_follows_the_pixels_not_the_object():
    photo = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    twin = photo.copy()
    other = Image.fromarray(np.arange(1, 49, dtype=np.uint8).reshape(4, 4, 3))
    assert photo_fingerprint(photo) == photo_fingerprint(photo) == fingerprint(photo)
    assert photo_fingerprint(twin) == photo_fingerprint(photo)
    assert photo_fingerprint(other) != photo_fingerprint(photo)


def test_a_channel_overlay_is_colour_where_the_channel_fires_and_the_gray_photo_elsewhere():
    gray = backdrop(Image.new("RGB", (40, 40), (200, 30, 30)), side=40)
    shade = np.asarray(gray)[0, 0].astype(float)
    assert shade[0] == shade[1] == shade[2]  # the photo's colour is gone: colour means the map
    values = np.zeros((8, 8), np.float32)
    values[:4] = 1.0  # the top half fires
    out = np.asarray(channel_overlay(gray, values)).astype(float)
    colours = np.array(palette()[: 3 * LEVELS], float).reshape(-1, 3)
    np.testing.assert_allclose(out[2, 20], 0.85 * colours[-1] + 0.15 * shade, atol=3)
    np.testing.assert_allclose(out[37, 20], 0.15 * colours[0] + 0.85 * shade, atol=3)
    # Under it, the colour bar: the colour map from the lowest to the highest value.
    bar = out[40:]
    assert bar.shape[0] > 20
    for colour in (colours[0], colours[-1]):
        assert (np.abs(bar - colour).sum(axis=-1) < 1).any()


def test_a_channel_grid_numbers_its_tiles_and_carries_its_colour_bar():
    from vlmlab.cnn.render import BLACK, WHITE, channel_grid

    # Sixteen copies of one map: the tiles differ only by the numbers written on them.
    maps = np.repeat(np.random.default_rng(2).random((1, 6, 6)).astype(np.float32), 16, axis=0)
    order = np.arange(16)
    grid, layout = channel_grid(maps, order)
    tile_h, tile_w = layout.tile_height, layout.tile_width
    corner = grid[GAP : GAP + 12, GAP : GAP + 12]
    assert (corner == BLACK).any() and (corner == WHITE).any()  # a number, white on black
    # The numbers follow the order: tile 0 reads "0" in one order and "15" in the reverse.
    reverse, _ = channel_grid(maps, order[::-1])
    assert (reverse[GAP : GAP + 12, GAP : GAP + 20] != grid[GAP : GAP + 12, GAP : GAP + 20]).any()
    # Under the tiles, a colour bar through every level of the colour map, with words in black.
    bar = grid[4 * (tile_h + GAP) + GAP :]
    assert bar.shape[0] > 20 and {0, LEVELS - 1} <= set(np.unique(bar)) and (bar == BLACK).any()
    assert layout.index_at(5, grid.shape[0] - 2) is None  # a click on the bar picks nothing


def test_png_bytes_keep_every_pixel_and_error_html_escapes_what_the_user_typed():
    import io

    from vlmlab.render import error_html, png_bytes

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 7, 3), np.uint8))
    again = Image.open(io.BytesIO(png_bytes(picture)))
    assert again.format == "PNG" and np.array_equal(np.asarray(again), np.asarray(picture))
    line = error_html("There is no sample called '<b>cat</b>'.")
    assert "&lt;b&gt;cat&lt;/b&gt;" in line and "<b>" not in line and line.startswith("<p")
