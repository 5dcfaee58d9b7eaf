"""Words drawn with Pillow follow the projector view like matplotlib's do: the CNN grid's channel
numbers, the Pixels tab's titles, the contrastive charts and the ViT patch numbers are drawn
larger in PROJECTOR style, in the pictures the renderers really return."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlmlab import cnn, contrastive, vit
from vlmlab.cnn.render import GAP, draw_features, feature_layout
from vlmlab.contrastive.render import draw_curves, draw_embedding_plane, draw_matrix
from vlmlab.pixels.render import titled_row
from vlmlab.render import PROJECTOR, figure_style
from vlmlab.vit.render import draw_patch_grid

LARGER = 1.3  # PROJECTOR draws text 1.6× as large; glyph boxes round to whole pixels


def height(mask: np.ndarray) -> int:
    """Rows from the first to the last inked row of `mask`."""
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def last_line(mask: np.ndarray) -> int:
    """Height of the lowest run of inked rows (the last line of text)."""
    rows = mask.any(axis=1)
    end = int(np.flatnonzero(rows)[-1])
    start = end
    while start > 0 and rows[start - 1]:
        start -= 1
    return end - start + 1


def both(draw):
    normal = draw()
    with figure_style(PROJECTOR):
        large = draw()
    return normal, large


def test_the_cnn_grids_channel_numbers_grow_and_are_not_served_from_the_normal_cache(chelsea):
    view = cnn.feature_maps(chelsea, "mobilenet_v2", cnn.layer_names("mobilenet_v2")[3])
    layout = feature_layout(view)
    normal, large = both(lambda: draw_features(view).grid)  # the same view: the grid is cached
    box = (slice(GAP, GAP + layout.tile_height), slice(GAP, GAP + layout.tile_width))

    def number_box(grid):  # the black box behind the first tile's number
        return np.asarray(grid.convert("RGB"))[box].max(axis=-1) < 8

    assert height(number_box(large)) >= LARGER * height(number_box(normal)) > 0
    assert large.height > normal.height  # its colour bar's words too


def test_the_pixels_tabs_titles_grow():
    tiles = [(Image.new("RGB", (120, 90), (128, 128, 128)), "Red (R)")]
    normal, large = both(lambda: titled_row(tiles))

    def ink(picture):
        return np.asarray(picture.convert("L"))[: picture.height - 90] < 90

    assert height(ink(large)) >= LARGER * height(ink(normal)) > 0
    assert large.width == normal.width


@pytest.fixture(scope="module")
def snapshot():
    return list(contrastive.train(steps=2, seed=0, batch_size=16, every=2))[-1]


@pytest.mark.parametrize("draw", [draw_curves, draw_embedding_plane, draw_matrix])
def test_the_contrastive_charts_words_grow_and_the_charts_keep_their_width(draw, snapshot):
    normal, large = both(lambda: draw(snapshot))
    assert large.width == normal.width

    def words(picture):  # the last line: the step under the curves and the plane, the legend
        pixels = np.asarray(picture.convert("RGB")).astype(int)
        return (pixels.max(axis=-1) < 200) & (np.ptp(pixels, axis=-1) < 30)  # black or gray

    assert last_line(words(large)) >= LARGER * last_line(words(normal))


def test_the_vit_patch_numbers_grow_inside_their_patches():
    inspection = vit.inspect_vit(Image.new("RGB", (224, 224), "black"), None)
    normal, large = both(lambda: draw_patch_grid(inspection))
    cell = normal.width // inspection.grid[1]

    def number(picture):  # white digits of patch 1 on the black photo
        return np.asarray(picture.convert("L"))[2 : cell - 1, 2 : cell - 1] > 200

    assert height(number(large)) >= LARGER * height(number(normal)) > 0
