"""The CNN engine, tab handlers and widgets.

Real predictions come from MobileNetV2's real ImageNet weights (seeded by conftest); every other
architecture is built at full size with random weights (`pretrained=False`).
"""

from __future__ import annotations

import gc
import statistics

import gradio as gr
import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from demo import cnn_tab
from vlmlab import cnn, models
from vlmlab.cnn import depth as cnn_depth
from vlmlab.cnn import render as cnn_render
from vlmlab.cnn import gradcam
from vlmlab.errors import LabError
from vlmlab.images import sample_files
from vlmlab.kernels import parse_kernel

REAL = "mobilenet_v2"  # the one CNN with real weights in the test world
CATS = {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat"}
RANDOM = ("alexnet", "vgg16", "vgg19", "resnet50", "resnet152")


def noise(seed: int, size: int = 48) -> Image.Image:
    """A photo no other test uses (so nothing about it is cached yet)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


class ForwardCounter:
    """Counts forward calls of one module with a temporary hook (removed on exit)."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.calls, self.batch_sizes = module, 0, []

    def __enter__(self):
        def count(_module, inputs, _output):
            self.calls += 1
            self.batch_sizes.append(inputs[0].shape[0])

        self.handle = self.module.register_forward_hook(count)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def first_conv(model: str, pretrained: bool = True) -> torch.nn.Module:
    loaded = models.load_model(model, topic="cnn", pretrained=pretrained)
    return loaded.model.get_submodule(cnn.architecture(model).first_conv)


# ---------------------------------------------------------------------------------------------
# Predictions with real weights


def test_chelsea_is_a_cat_and_coffee_is_espresso(chelsea, coffee):
    cat = cnn.classify(chelsea, REAL, top_k=3)
    assert len(cat) == 3 and CATS & {label for label, _ in cat}
    cup = cnn.classify(coffee, REAL, top_k=5)
    assert {"espresso", "cup"} & {label for label, _ in cup}
    for prediction in (cat, cup):
        scores = [p for _, p in prediction]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6


def test_all_1000_classes_sum_to_one(chelsea):
    prediction = cnn.classify(chelsea, REAL, top_k=1000)
    assert len(prediction) == 1000 == len({label for label, _ in prediction})
    assert sum(p for _, p in prediction) == pytest.approx(1.0, abs=1e-4)


def test_a_batch_runs_one_forward_per_model_and_keeps_the_order(chelsea, coffee):
    photos = [noise(1), chelsea, noise(2), coffee, noise(1)]  # a repeat, and two models
    names = [REAL, REAL, "alexnet", REAL, REAL]
    tops = [2, 3, 4, 5, 1]
    with (
        ForwardCounter(first_conv(REAL, False)) as mobile,
        ForwardCounter(first_conv("alexnet", False)) as alex,
    ):
        found = cnn.classify_many(photos, names, tops, pretrained=False)
    assert mobile.batch_sizes == [3] and alex.batch_sizes == [1]  # noise(1) runs once
    for photo, name, k, result in zip(photos, names, tops, found):
        assert result == cnn.classify(photo, name, k, pretrained=False)
    assert [len(r) for r in found] == tops and found[0][:1] == found[4]


def test_bad_choices_get_clear_messages(chelsea):
    for top_k in (0, 1001, 2.5, True, "5", None):
        with pytest.raises(LabError, match="top_k must be a whole number from 1 to 1000"):
            cnn.classify(chelsea, REAL, top_k)
    with pytest.raises(LabError, match="Unknown model 'lenet'; choose one of: alexnet"):
        cnn.classify(chelsea, "lenet")
    with pytest.raises(LabError, match=r"Unknown layer 'conv9'; choose one of: conv1, block1"):
        cnn.feature_maps(chelsea, REAL, "conv9")
    with pytest.raises(LabError, match="Order channels by one of: activation, index"):
        cnn.feature_maps(chelsea, REAL, "conv1", order="loudest")
    with pytest.raises(LabError, match="conv1 has channels 0 to 31"):
        cnn.feature_maps(chelsea, REAL, "conv1", channel=32)


def test_an_edited_copy_is_a_new_photo(chelsea):
    before = cnn.classify(chelsea, REAL, 1)
    edited = chelsea.copy()
    edited.paste((20, 90, 200), (0, 0, *edited.size))
    assert cnn.classify(edited, REAL, 1) != before
    assert cnn.classify(chelsea, REAL, 1) == before


def test_a_model_without_weights_here_says_so(chelsea):
    with pytest.raises(LabError, match=r"AlexNet .* is not on this machine"):
        cnn.classify(chelsea, "alexnet")


# ---------------------------------------------------------------------------------------------
# Structure, read from the models themselves


def test_layer_names_come_from_the_structure():
    assert cnn.layer_names("alexnet") == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
        "conv4", "relu4", "conv5", "relu5", "pool3", "avgpool",
    ]  # fmt: skip
    for name, convs, pools in (("vgg16", 13, 5), ("vgg19", 16, 5)):
        names = cnn.layer_names(name)
        assert names.count(f"conv{convs}") == 1 and f"conv{convs + 1}" not in names
        assert f"relu{convs}" in names and f"pool{pools}" in names and names[-1] == "avgpool"
    for name in ("resnet50", "resnet152"):
        assert cnn.layer_names(name) == [
            "conv1", "bn1", "relu1", "pool1", "layer1", "layer2", "layer3", "layer4", "avgpool",
        ]  # fmt: skip
    assert cnn.layer_names(REAL) == ["conv1", *[f"block{i}" for i in range(1, 18)], "conv2"]


def test_depth_counts_weight_layers_on_the_longest_path():
    depths = {row.model: row.depth for row in cnn_depth.depth_table()}
    assert depths == {
        "alexnet": 8, "vgg16": 16, "vgg19": 19, "resnet50": 50, "resnet152": 152,
        "mobilenet_v2": 53,
    }  # fmt: skip


def test_receptive_fields_match_the_published_ones():
    def field(model, layer):
        return cnn.architecture(model).layer(layer).receptive_field

    alexnet = [("conv1", 11), ("pool1", 19), ("conv2", 51), ("pool2", 67), ("conv5", 163)]
    assert [field("alexnet", name) for name, _ in alexnet] == [rf for _, rf in alexnet]
    assert field("alexnet", "pool3") == 195
    assert (field("vgg16", "relu13"), field("vgg16", "pool5")) == (196, 212)
    assert field("resnet50", "avgpool") > 224  # a global pool sees the whole input


@pytest.fixture(scope="module")
def random_models():
    """Full-size random-weight architectures, dropped again after this module (memory)."""
    loaded = {name: models.load_model(name, topic="cnn", pretrained=False) for name in RANDOM}
    yield loaded
    cnn._extractors.clear(), cnn._captures.clear(), cnn._filters.clear()
    cnn_render._grids.clear(), cnn_render._backdrops.clear(), cnn_render._filter_grids.clear()
    for key, model in list(models._loaded.items()):  # the lab keeps models for good; these
        if any(model is mine for mine in loaded.values()):  # were only for the tests
            del models._loaded[key]
    gc.collect()


def test_parameter_counts_match_the_models(random_models):
    rows = {row.model: row for row in cnn_depth.depth_table()}
    real = models.load_model(REAL, topic="cnn")
    for name, loaded in [*random_models.items(), (REAL, real)]:
        assert rows[name].parameters == sum(p.numel() for p in loaded.model.parameters())
        assert rows[name].gflops > 0 and 50 < rows[name].top1 < 100 and rows[name].year >= 2012


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet50"])
def test_one_forward_captures_every_layer_at_224(random_models, name):
    capture = cnn.capture_features(noise(10), name, pretrained=False)
    arch = capture.architecture
    assert arch.input_size == 224 and capture.view.size == (224, 224)
    assert list(capture.maps) == arch.names
    assert {layer.name: layer.shape for layer in arch.layers} == {
        layer: maps.shape for layer, maps in capture.maps.items()
    }
    expected = {"alexnet": ("conv1", (64, 55, 55)), "vgg16": ("pool5", (512, 7, 7))}
    expected["resnet50"] = ("layer4", (2048, 7, 7))
    layer, shape = expected[name]
    assert capture.maps[layer].shape == shape


@pytest.mark.parametrize("name", ["alexnet", "mobilenet_v2"])
def test_the_capture_graph_returns_what_torchvision_s_feature_extractor_returns(name):
    from torchvision.models import get_model
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    model = get_model(name, weights=None).eval()
    nodes = {layer.path: layer.name for layer in cnn.architecture(name).layers}
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        ours = torch.fx.GraphModule(model, cnn.capture_graph(name))(x)
        theirs = create_feature_extractor(model, return_nodes=nodes)(x)
    assert list(ours) == list(theirs) == cnn.layer_names(name)
    for layer in ours:
        assert torch.equal(ours[layer], theirs[layer]), layer


def test_a_conv_output_is_not_overwritten_by_its_in_place_relu(random_models):
    capture = cnn.capture_features(noise(11), "alexnet", pretrained=False)
    conv, relu = capture.maps["conv1"], capture.maps["relu1"]
    assert (conv < 0).any() and np.array_equal(relu, np.maximum(conv, 0))
    assert random_models["alexnet"].model.features[1].inplace  # the model itself is unchanged


def test_shapes_without_weights_for_the_deepest_models():
    assert cnn.architecture("resnet152").layer("layer3").shape == (1024, 14, 14)
    assert cnn.architecture("vgg19").layer("conv16").shape == (512, 14, 14)


# ---------------------------------------------------------------------------------------------
# Looking around re-renders from the cache


def test_switching_layer_order_or_channel_never_runs_the_model(chelsea):
    photo = chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with ForwardCounter(first_conv(REAL)) as counter:
        first = cnn.feature_maps(photo, REAL, "block4")
        views = [
            cnn.feature_maps(photo, REAL, layer, order, channel)
            for layer in ("conv1", "block4", "conv2")
            for order in cnn.ORDERS
            for channel in (None, 3)
        ]
        assert counter.calls == 1
    assert first.channel == first.order[0] and views[-1].channel == 3
    capture = cnn.capture_features(photo, REAL)
    means = capture.means["block4"]
    assert list(means[list(first.order)]) == sorted(means, reverse=True)
    drawn = [cnn_render.draw_features(view) for view in (views[2], views[-1])]
    assert drawn[0].grid.size != drawn[1].grid.size  # conv1 and conv2 differ


def test_a_click_on_the_grid_finds_the_channel_under_it(chelsea):
    view = cnn.feature_maps(chelsea, REAL, "block14")
    layout = cnn_render.feature_layout(view)
    for position in (0, 7, len(view.order) - 1):
        row, column = divmod(position, layout.columns)
        x = layout.gap + column * (layout.tile_width + layout.gap) + layout.tile_width // 2
        y = layout.gap + row * (layout.tile_height + layout.gap) + layout.tile_height // 2
        assert cnn_render.channel_at(view, x, y) == view.order[position]
    grid = cnn_render.draw_features(view).grid
    assert cnn_render.channel_at(view, 0, 0) is None  # the gap around the grid
    assert cnn_render.channel_at(view, grid.width - 1, grid.height - 1) is None  # empty end


def test_no_hook_outlives_a_call_and_memory_stays_flat():
    """150 calls: 24 new photos (forwards, cache evictions), 6 looks at each, 6 Grad-CAMs."""
    loaded = models.load_model(REAL, topic="cnn")
    process = psutil.Process()
    looks = [("block3", None), ("block3", 5), ("conv2", 7), ("conv1", None), ("block9", 1)]
    rss = []
    for seed in range(24):
        photo = noise(100 + seed)
        for layer, channel in [*looks, ("block9", None)]:
            cnn.feature_maps(photo, REAL, layer, channel=channel)
        if seed % 4 == 3:
            gradcam.grad_cam(photo, REAL)
        rss.append(process.memory_info().rss)  # reference counting frees as it goes
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    hooks = [
        (name, kind)
        for name, module in loaded.model.named_modules()
        for kind in kinds
        if getattr(module, kind)
    ]
    assert hooks == []
    # Medians: a Grad-CAM's autograd buffers may linger in the allocator for a call or two.
    # Every cache is full by photo 13: the 64 drawn grids (6 looks a photo) fill after photo 11.
    grown = statistics.median(rss[-3:]) - statistics.median(rss[13:16])
    assert grown < 32 * 2**20, f"memory grew by {grown / 2**20:.0f} MiB over the last 50 calls"


# ---------------------------------------------------------------------------------------------
# Filters, Grad-CAM, depth


def test_learned_filters_and_their_text_for_the_convolution_tab(random_models):
    alex = cnn.learned_filters("alexnet", pretrained=False)
    assert alex.layer == "conv1" and alex.weights.shape == (64, 3, 11, 11)
    mobile = cnn.learned_filters(REAL)
    assert mobile.weights.shape == (32, 3, 3, 3)
    real = first_conv(REAL).weight.detach().numpy()
    assert np.array_equal(mobile.weights, real)
    framed, plain = cnn_render.filter_picture(mobile, 5), cnn_render.filter_picture(mobile)
    assert framed.size == plain.size and framed != plain
    with pytest.raises(LabError, match="conv1 has filters 0 to 31"):
        mobile.kernel(32)
    text, tabs = cnn_tab.send_filter(REAL, 5)
    largest = np.abs(real[5]).max()
    assert np.allclose(parse_kernel(text), real[5], atol=largest * 5e-3)
    assert parse_kernel(text).shape == (3, 3, 3) and tabs.selected == "convolution"


def cat_and_coffee() -> Image.Image:
    """Chelsea top-left, the coffee bottom-right, grey elsewhere: evidence has a place to be."""
    from skimage import data

    canvas = Image.new("RGB", (448, 448), (128, 128, 128))
    for pixels, corner in ((data.chelsea(), (0, 0)), (data.coffee(), (224, 224))):
        photo = Image.fromarray(pixels)
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).resize((224, 224))
        canvas.paste(square, corner)
    return canvas


def share_in_quadrant(heat: np.ndarray, bottom_right: bool) -> float:
    heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize((224, 224)))
    quadrant = heat[112:, 112:] if bottom_right else heat[:112, :112]
    return float(quadrant.sum() / heat.sum())


def test_grad_cam_is_warmer_on_the_cat_than_on_the_rest():
    photo = cat_and_coffee()
    cat = gradcam.grad_cam(photo, REAL, "Egyptian cat")
    cup = gradcam.grad_cam(photo, REAL, cnn.categories(REAL).index("espresso"))
    assert cat.label == "Egyptian cat" and cup.label == "espresso"
    assert share_in_quadrant(cat.heat, bottom_right=False) > 0.5  # a quarter if spread evenly
    assert share_in_quadrant(cup.heat, bottom_right=True) > 0.5
    assert cat.layer == "conv2" and cat.heat.max() == pytest.approx(1.0)
    # Enlarged, with its colour bar (0 to 1, in words) under it.
    overlay = cnn_render.draw_evidence(cat)
    assert overlay.width == 448 and overlay.height > 448 + 30
    bar = np.asarray(overlay)[448:].astype(int)
    assert (np.abs(bar - (0, 0, 128)).sum(axis=-1) < 40).any()  # jet's dark blue: no evidence
    assert (np.abs(bar - (128, 0, 0)).sum(axis=-1) < 40).any()  # its dark red: the strongest
    assert "evidence, not an explanation" in cat.note


def test_grad_cam_defaults_to_the_top_class_and_checks_its_target(chelsea):
    top = gradcam.grad_cam(chelsea, REAL)
    assert top.label == cnn.classify(chelsea, REAL, 1)[0][0]
    with pytest.raises(LabError, match=r"'crane' names 2 classes \(0, 2\); give the class number"):
        gradcam.class_index("crane", ["crane", "tabby", "Crane"], np.ones(3))
    with pytest.raises(LabError, match="No class is called 'unicorn'"):
        gradcam.grad_cam(chelsea, REAL, "unicorn")
    with pytest.raises(LabError, match="The class number must be from 0 to 999"):
        gradcam.grad_cam(chelsea, REAL, 1000)


@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
def test_grad_cam_runs_on_random_architectures(random_models, name):
    found = gradcam.grad_cam(noise(12), name, 1, pretrained=False)
    layer = cnn.architecture(name).layer(found.layer)
    assert found.heat.shape == layer.shape[1:] and found.class_index == 1


def test_the_comparison_notes_missing_weights_instead_of_failing(chelsea):
    found = cnn_depth.compare_models(chelsea, 3)
    assert [row.year for row in found.rows] == sorted(row.year for row in found.rows)
    assert list(found.predictions) == [REAL] and len(found.predictions[REAL]) == 3
    assert set(found.notes) == set(RANDOM)
    assert all("is not on this machine" in note for note in found.notes.values())


# ---------------------------------------------------------------------------------------------
# The Gradio tab's handlers


def test_a_batch_of_requests_fails_only_where_it_must():
    files = sample_files()
    photos = [str(files["chelsea"]), None, str(files["coffee"]), str(files["coffee"])]
    [answers] = cnn_tab.classify_batch(photos, [REAL, REAL, "alexnet", REAL], [2, 2, 2, 2])
    assert list(answers[0]) == [label for label, _ in cnn.classify(files["chelsea"], REAL, 2)]
    assert answers[1].startswith("⚠️ Please pick") and "is not on this machine" in answers[2]
    assert "espresso" in answers[3]
    with pytest.raises(gr.Error, match="is not on this machine"):
        cnn_tab.classify_batch([str(files["coffee"])], ["alexnet"], [5])


def test_a_new_network_brings_its_own_layers_and_keeps_the_imagenet_classes():
    shown = cnn_tab.pick_model("alexnet")  # read from its structure: no weights needed
    assert shown["layer"].choices[0][0] == cnn.layer_names("alexnet")[0]
    assert shown["layer"].value == cnn.layer_names("alexnet")[0] and shown["channel"] is None
    assert "target" not in shown  # the same 1000 classes: the class list stays as it is


def test_the_feature_map_handler_returns_images_text_and_channel():
    photo = str(sample_files()["chelsea"])
    shown = cnn_tab.show_feature_maps(photo, REAL, "block2", "index", 4, None)
    grid, large, overlay, caption, channel = (shown[name] for name in cnn_tab.CHANNEL_VIEWS)
    assert channel == 4 and "24×56×56" in caption and "11×11 input pixels" in caption
    # Each picture carries its colour bar under it; the large channel and its overlay, the
    # channel's own values.
    assert grid.mode == "P" and large.width == 336 and overlay.width == 336
    assert large.height > 336 + 30 and overlay.height == large.height


# ---------------------------------------------------------------------------------------------
# Widgets


def test_widgets_follow_their_controls(chelsea):
    """Each control shows what the engine computes for its new setting."""
    import html
    import re

    from lab_api import png_pixels

    from widgets.cnn import EvidenceView, FeatureMapBrowser, FilterGallery, PredictionView

    predictions = PredictionView(chelsea, REAL, top_k=3)
    predictions.top_k.value = 5
    shown = re.findall(r"<tr><td>(.*?)</td>", predictions.output.value)
    assert shown == [html.escape(label) for label, _ in cnn.classify(chelsea, REAL, 5)]
    assert shown[0] == "Egyptian cat"

    browser = FeatureMapBrowser(chelsea, REAL)
    browser.layer.value = "conv2"
    view = cnn.view_features(browser.capture, "conv2", "activation", None)  # its busiest channel
    assert browser.channel.max == 1279 and browser.channel.value == view.channel
    grid = cnn_render.draw_features(view).grid
    assert np.array_equal(png_pixels(browser.grid.value), png_pixels(grid))
    chosen = (view.channel + 1) % 1280
    browser.channel.value = chosen
    view = cnn.view_features(browser.capture, "conv2", "activation", chosen)
    drawn = cnn_render.draw_features(view)
    assert np.array_equal(png_pixels(browser.large.value), png_pixels(drawn.channel_image))
    assert np.array_equal(png_pixels(browser.overlay.value), png_pixels(drawn.overlay))
    assert f"Channel {chosen} is number" in browser.caption.value

    gallery = FilterGallery(REAL)
    gallery.index.value = 7
    first_conv = next(
        m for m in models.load_model(REAL, topic="cnn").model.modules()
        if isinstance(m, torch.nn.Conv2d)
    )  # fmt: skip
    weights = first_conv.weight[7].detach().float().numpy()  # (3, 3, 3): the network's filter 7
    np.testing.assert_allclose(parse_kernel(gallery.numbers.value), weights, atol=0.006)

    evidence = EvidenceView(chelsea, REAL)
    evidence.target.value = "espresso"
    found = gradcam.grad_cam(chelsea, REAL, "espresso")
    assert found.label == "espresso" and "espresso" in evidence.text.value
    assert np.array_equal(
        png_pixels(evidence.picture.value), png_pixels(cnn_render.draw_evidence(found))
    )
