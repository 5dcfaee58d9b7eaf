"""Figures that read from the back row: colour bars with their units, the depth chart beside the
table, and defaults that work on the machine at hand."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vlmlab import cnn
from vlmlab.cnn import depth as cnn_depth
from vlmlab.models import choices, torchvision_weights
from vlmlab.render import colour_bar, value_ticks, with_colour_bar


def test_a_colour_bar_runs_through_the_colour_map_and_says_what_it_means():
    import matplotlib

    bar = np.asarray(colour_bar(400, "inferno", value_ticks(0.0, 2.0), "attention (%)"))
    ends = matplotlib.colormaps["inferno"]([0.0, 1.0], bytes=True)[:, :3]
    for colour in ends:  # both ends of the map are in it
        assert (np.abs(bar.astype(int) - colour).sum(axis=-1) <= 3).any()
    assert (bar == 0).all(axis=-1).sum() > 100  # black words: ticks and the label
    assert value_ticks(0.0, 2.0) == [(0.0, "0"), (0.5, "1"), (1.0, "2")]
    picture = with_colour_bar(Image.new("RGB", (300, 200), "gray"), "viridis", [], "x")
    assert picture.width == 300 and picture.height > 220
    assert np.asarray(picture)[:200].std() == 0  # the picture itself is untouched


def test_the_depth_chart_and_table_need_no_weights_and_give_top1_to_one_decimal():
    from demo.cnn_tab import depth_frame
    from vlmlab.cnn.render import draw_depth_chart

    rows = cnn_depth.depth_table()
    assert [row.model for row in rows][:1] == ["alexnet"]  # by year: AlexNet → VGG → ResNet
    frame = depth_frame(rows)
    published = torchvision_weights("alexnet").meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert frame["ImageNet top-1 (%)"].iloc[0] == round(published, 1)  # 56.5, not 56.522
    assert all(value == round(value, 1) for value in frame["ImageNet top-1 (%)"])
    chart = np.asarray(draw_depth_chart(rows))
    assert chart.shape[1] >= 500 and chart.shape[0] >= 400
    colourful = np.ptp(chart.astype(int), axis=-1) > 60  # points and the top-1 colour bar
    assert colourful.sum() > 2000


def test_a_dropdown_starts_on_a_network_whose_weights_are_here():
    # The test world has MobileNetV2's real weights and no others.
    assert cnn.weights_on_machine("mobilenet_v2") and not cnn.weights_on_machine("alexnet")
    assert cnn.default_choice(choices(cnn.TOPIC)) == "mobilenet_v2"
    assert cnn.default_choice(["resnet50", "alexnet"]) == "resnet50"  # none here: the first
