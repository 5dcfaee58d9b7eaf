"""The ViT engine, its views, the tab's endpoint and the widgets, on the tiny offline checkpoints.

The tiny ViT, DINO and CLIP models have their own image sizes, patch sizes, depths and widths
(tests/tiny_models.py), so any hard-coded 224 / 16 / 14×14 / 12 would fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import DINO_ID, TINY_SPECS, VIT_ID, VIT_LABELS

from vlmlab import vit
from vlmlab.vit import cost as vit_cost
from vlmlab.errors import LabError
from vlmlab.models import LoadedModel, choices, get_spec, load_model
from vlmlab.vit.render import (
    display_scale,
    draw_attention,
    draw_attention_views,
    draw_head_maps,
    draw_patch_grid,
    draw_patch_steps,
    draw_position_similarity,
    patch_at,
)

CLIP_ID = "openai/clip-vit-large-patch14"  # the tiny one: patch 6, 7×7 grid, 3 layers, 4 heads


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


@pytest.fixture(scope="module")
def inspection(photo) -> vit.ViTInspection:
    return vit.inspect_vit(photo, VIT_ID)


def _backbone(name: str):
    model = vit.load_vit(name).model
    return getattr(model, "vision_model", None) or model.base_model


# ---------------------------------------------------------------------------------------------
# Grid and token bookkeeping, from each model's own config


@pytest.mark.parametrize("name", choices("vit"))
def test_grid_and_tokens_come_from_each_models_config(name, photo):
    spec = TINY_SPECS[name]
    i = vit.inspect_vit(photo, name)
    grid, p = spec["grid"], spec["patch_size"]
    assert i.grid == (grid, grid) and i.patch_size == p
    assert i.image.size == (spec["image_size"], spec["image_size"])
    assert i.num_special == 1 and i.has_cls  # ViT, DINO and CLIP each have one CLS token
    assert i.attentions.shape == (spec["layers"], spec["heads"], grid * grid + 1, grid * grid + 1)
    assert i.patch_pixels.shape == (grid * grid, 3, p, p)
    assert i.patch_embeddings.shape == (grid * grid, spec["hidden"])
    assert i.position_embeddings.shape == (grid * grid + 1, spec["hidden"])
    assert f"{grid}×{grid} = {grid * grid} patches" in vit.describe_model(i)


def test_a_model_without_cls_token_has_no_special_tokens(photo):
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=24,
        patch_size=6,
        vision_use_head=False,
    )
    config._attn_implementation = "eager"
    loaded = LoadedModel(  # SigLIP is not in the registry: borrow a spec for its title
        get_spec(DINO_ID),
        SiglipVisionModel(config).eval(),
        SiglipImageProcessor(size={"height": 24, "width": 24}),
        torch.device("cpu"),
        torch.float32,
    )
    i = vit.inspect_loaded(loaded, photo)
    assert i.grid == (4, 4) and i.num_special == 0 and not i.has_cls
    assert i.attentions.shape == (2, 2, 16, 16)
    assert vit.attention_map(i, 1, 1, 16).weights.shape == (4, 4)
    with pytest.raises(LabError, match="no CLS token; pick a patch from 1 to 16"):
        vit.attention_map(i, 1, 1, vit.CLS)


def test_a_model_that_returns_no_attention_says_why(photo):
    loaded = load_model(VIT_ID, topic="vit", attn_implementation="sdpa")
    with pytest.raises(LabError, match="returned no attention maps.*'sdpa'.*eager"):
        vit.inspect_loaded(loaded, photo)


# ---------------------------------------------------------------------------------------------
# The numbers are the model's own


@pytest.mark.parametrize("name", [VIT_ID, CLIP_ID])
def test_attention_rows_sum_to_one(name, photo):
    attentions = vit.inspect_vit(photo, name).attentions
    np.testing.assert_allclose(attentions.sum(-1), 1.0, atol=1e-5)
    assert (attentions >= 0).all()


@pytest.mark.parametrize("name", [VIT_ID, CLIP_ID])
def test_flattened_patch_times_projection_weights_is_the_patch_embedding(name, photo):
    i = vit.inspect_vit(photo, name)
    modules = _backbone(name).embeddings.modules()
    conv = next(m for m in modules if isinstance(m, torch.nn.Conv2d))
    weights = conv.weight.detach().numpy().reshape(conv.out_channels, -1)  # (D, C·p·p)
    bias = conv.bias.detach().numpy() if conv.bias is not None else 0.0
    for patch in (1, 2, i.grid[1] + 1, i.num_patches):  # first, its neighbour, one row down, last
        vector = vit.patch_vector(i, patch)
        assert vector.shape == (3 * i.patch_size**2,)
        np.testing.assert_allclose(
            weights @ vector + bias, i.patch_embeddings[patch - 1], atol=1e-4
        )


def test_patch_embedding_plus_position_is_what_enters_the_encoder(photo, inspection):
    model = vit.load_vit(VIT_ID).model
    processor = vit.load_vit(VIT_ID).processor
    with torch.inference_mode():
        pixels = processor(images=photo, return_tensors="pt")["pixel_values"]
        first = model(pixel_values=pixels, output_hidden_states=True).hidden_states[0][0].numpy()
    positions = inspection.position_embeddings
    np.testing.assert_allclose(first[1:], inspection.patch_embeddings + positions[1:], atol=1e-5)


def test_the_picture_shown_is_the_models_input_denormalised(inspection):
    # ViT's processor maps 0–255 to (x/255 − 0.5)/0.5; the tiny one keeps that convention.
    pixels = np.asarray(inspection.image, np.float32).transpose(2, 0, 1) / 255.0
    patches = vit.cut_patches((pixels - 0.5) / 0.5, inspection.patch_size)
    np.testing.assert_allclose(patches, inspection.patch_pixels, atol=2 / 255 + 1e-6)


def test_large_attentions_are_kept_in_half_precision(photo, monkeypatch):
    monkeypatch.setattr(vit, "HALF_PRECISION_ABOVE", 0)  # as for CLIP ViT-L/14's 101 MB
    i = vit.inspect_loaded(vit.load_vit(CLIP_ID), photo)
    assert i.attentions.dtype == np.float16
    np.testing.assert_allclose(i.attentions.astype(np.float32).sum(-1), 1.0, atol=2e-2)
    assert vit.attention_map(i, 1, "mean", "CLS").weights.dtype == np.float32
    assert i.rollout.dtype == np.float32


def test_an_inspection_survives_pickling(inspection):
    # ZeroGPU runs the forward in another process and sends the result back pickled.
    import pickle

    copy = pickle.loads(pickle.dumps(inspection))
    np.testing.assert_array_equal(copy.attentions, inspection.attentions)
    assert copy.grid == inspection.grid and copy.image.size == inspection.image.size


def test_rollout_matches_a_reference_computation(inspection):
    a = inspection.attentions.astype(np.float64)
    tokens = a.shape[-1]
    expected = np.eye(tokens)
    for layer in range(a.shape[0]):
        mixed = a[layer].mean(axis=0) + np.eye(tokens)  # residual connection
        mixed = mixed / mixed.sum(axis=1, keepdims=True)
        expected = mixed @ expected
        np.testing.assert_allclose(inspection.rollout[layer], expected, atol=1e-5)
    view = vit.rollout_map(inspection, "3")
    np.testing.assert_allclose(view.weights.ravel(), expected[3, 1:], atol=1e-5)
    assert view.to_special == pytest.approx(expected[3, 0], abs=1e-5)


def test_attention_map_picks_the_layer_head_and_query(inspection):
    i = inspection
    view = vit.attention_map(i, 2, 2, 7)  # layer 2, head 2, patch 7 (token 7: after CLS)
    np.testing.assert_allclose(view.weights.ravel(), i.attentions[1, 1, 7, 1:])
    assert view.to_special == pytest.approx(i.attentions[1, 1, 7, 0])
    mean = vit.attention_map(i, 2, "mean", "cls")
    np.testing.assert_allclose(mean.weights.ravel(), i.attentions[1, :, 0, 1:].mean(0), atol=1e-7)
    assert mean.query == "CLS" and view.query == "patch 7"
    maps = vit.head_maps(i, 1, "CLS")
    assert len(maps) == i.num_heads + 1 and maps[-1].source.startswith("mean")


def test_position_similarity_is_a_cosine_grid_of_grids(inspection):
    s = vit.position_similarity(inspection)
    rows, cols = inspection.grid
    assert s.shape == (rows, cols, rows, cols)
    flat = s.reshape(rows * cols, rows * cols)
    np.testing.assert_allclose(np.diag(flat), 1.0, atol=1e-5)
    np.testing.assert_allclose(flat, flat.T, atol=1e-6)


def test_the_classifier_gives_its_top_5_and_the_others_say_why_they_do_not(photo, inspection):
    labels, probabilities = zip(*inspection.predictions)
    assert len(labels) == 5 and set(labels) <= set(VIT_LABELS)
    assert (
        list(probabilities) == sorted(probabilities, reverse=True)
        and sum(probabilities) <= 1 + 1e-6
    )
    dino = vit.inspect_vit(photo, DINO_ID)
    assert dino.predictions == () and "no classifier head" in dino.notes[0]
    clip = vit.inspect_vit(photo, CLIP_ID)
    assert clip.predictions == () and "vision tower" in clip.notes[0]


def test_switching_layer_head_or_query_never_runs_the_model_again(coffee):
    model = vit.load_vit(VIT_ID).model
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        photo = coffee.crop((0, 0, 300, 300))  # a photo no other test has inspected
        first = vit.inspect_vit(photo, VIT_ID)
        for layer, head, query in [(1, "mean", "CLS"), (3, "2", "5"), (2, "1", 36)]:
            draw_attention_views(vit.inspect_vit(photo, VIT_ID), layer, head, query)
        assert vit.inspect_vit(photo.copy(), VIT_ID) is first  # same pixels, same result
    finally:
        handle.remove()
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------
# Bad input: one clear sentence each


@pytest.mark.parametrize(
    "layer, head, query, message",
    [
        (0, "mean", "CLS", "layer must be between 1 and 3: this model has 3 layers"),
        (4, "mean", "CLS", "layer must be between 1 and 3"),
        (1.5, "mean", "CLS", "layer must be a whole number"),
        ("two", "mean", "CLS", "layer must be a whole number"),
        (1, 3, "CLS", "head must be between 1 and 2, or mean"),
        (1, "0", "CLS", "head must be between 1 and 2"),
        (1, "first", "CLS", "head must be mean or a number"),
        (1, "mean", 37, "Patch 37 is outside the 6×6 grid: pick a patch from 1 to 36, or CLS"),
        (1, "mean", "0", "Patch 0 is outside the 6×6 grid"),
        (1, "mean", "the cat", "query must be CLS or a patch number from 1 to 36"),
    ],
)
def test_bad_choices_get_clear_messages(inspection, layer, head, query, message):
    with pytest.raises(LabError, match=message):
        draw_attention_views(inspection, layer, head, query)


def test_a_patch_must_be_on_the_grid(inspection):
    with pytest.raises(LabError, match="CLS has no pixels"):
        vit.patch_vector(inspection, "CLS")
    with pytest.raises(LabError, match="outside the 6×6 grid"):
        draw_patch_steps(inspection, 99)
    side = draw_patch_grid(inspection).width
    with pytest.raises(LabError, match="outside the patch grid"):
        patch_at(inspection, side + 5, 3)


def test_an_unknown_model_lists_the_choices(photo):
    with pytest.raises(LabError, match="choose one of: google/vit-base-patch16-224"):
        vit.inspect_vit(photo, "alexnet")


# ---------------------------------------------------------------------------------------------
# Why patches


def test_why_patches_counts_the_lecture_numbers():
    cost = vit_cost.patch_cost(224, 224, 16)
    assert (cost.pixel_tokens, cost.patch_tokens, cost.grid) == (50_176, 196, (14, 14))
    assert cost.pixel_entries == 50_176**2 and cost.patch_entries == 196**2
    assert cost.pixel_bytes == 4 * 50_176**2 and cost.saving == 16**4
    _header, pixels, patches = vit_cost.patch_cost_rows(cost)
    assert pixels[1:] == ["50,176", "2,517,630,976", "10.1 GB"]
    assert patches == ["16×16 patches", "196", "38,416", "154 kB"]
    assert "cropped away" not in vit_cost.describe_patch_cost(cost)
    # 225×225 keeps 14×14 whole patches: 50,625 − 196·256 = 449 pixels left over.
    assert "449 pixels past the last whole patch" in vit_cost.describe_patch_cost(
        vit_cost.patch_cost(225, 225, 16)
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 224, 16), "sides must be between 1 and"),
        ((224, 224, 300), "patch size must be between 1 and 224"),
        ((224, "wide", 16), "width must be a whole number"),
        ((224, 224, 2.5), "patch size must be a whole number"),
    ],
)
def test_why_patches_rejects_bad_numbers(args, message):
    with pytest.raises(LabError, match=message):
        vit_cost.patch_cost(*args)


# ---------------------------------------------------------------------------------------------
# Views


def test_the_patch_grid_and_clicks_agree(inspection):
    scale = display_scale(inspection)
    cell = inspection.patch_size * scale
    picture = draw_patch_grid(inspection, selected=8)
    assert picture.size == (inspection.image.width * scale, inspection.image.height * scale)
    assert cell >= 30  # room for the numbers
    for patch in range(1, inspection.num_patches + 1):
        row, col = divmod(patch - 1, inspection.grid[1])
        assert patch_at(inspection, col * cell + cell // 2, row * cell + cell // 2) == patch
    assert np.asarray(picture).tobytes() != np.asarray(draw_patch_grid(inspection)).tobytes()


def test_heat_maps_follow_the_choice(inspection):
    one = np.asarray(draw_attention(inspection, vit.attention_map(inspection, 1, 1, "CLS")))
    other = np.asarray(draw_attention(inspection, vit.attention_map(inspection, 1, 2, "CLS")))
    assert one.shape == other.shape and (one != other).any()
    heads = draw_head_maps(inspection, vit.head_maps(inspection, 1, "CLS"))
    assert heads.width > one.shape[1] // 2  # several tiles side by side
    views = draw_attention_views(inspection, 3, "mean", "12")
    assert "patch 12 (layer 3, mean of 2 heads)" in views.text and "rollout" in views.text
    assert "37×37 attention matrix" in views.text


def test_the_explanatory_figures_render(inspection):
    steps = draw_patch_steps(inspection, 5)
    positions = draw_position_similarity(inspection)
    assert steps.width > 400 and positions.width > 200
    assert np.asarray(steps).std() > 10 and np.asarray(positions).std() > 10  # not blank


# ---------------------------------------------------------------------------------------------
# The Gradio endpoint (the whole app, launched once per session) and the widgets


def test_the_vit_attention_endpoint_answers_and_validates(lab_app):
    from gradio_client import handle_file

    from vlmlab.images import sample_files

    path = handle_file(str(sample_files()["chelsea"]))
    heat_map, heads, rollout, text = lab_app.client.predict(
        path, VIT_ID, 2, "1", "CLS", api_name="/vit_attention"
    )
    assert Image.open(heat_map).size == Image.open(rollout).size
    expected = draw_attention_views(
        vit.inspect_vit(sample_files()["chelsea"], VIT_ID), 2, "1", vit.CLS
    )  # what the engine draws for these settings
    assert Image.open(heads).size == expected.heads.size and "CLS (layer 2, head 1)" in text
    with pytest.raises(Exception, match="Patch 99 is outside the 6×6 grid"):
        lab_app.client.predict(path, VIT_ID, 2, "1", "99", api_name="/vit_attention")
    with pytest.raises(Exception, match="layer must be between 1 and 3"):
        lab_app.client.predict(path, VIT_ID, 9, "mean", "CLS", api_name="/vit_attention")


def test_the_tab_keeps_the_view_the_model_has_and_resets_the_rest():
    from types import SimpleNamespace

    from demo import vit_tab
    from vlmlab.images import sample_files

    path = str(sample_files()["chelsea"])
    kept = vit_tab.look_inside(path, VIT_ID, 2, "2", "5", 7, None)  # 3 layers, 2 heads, 6×6
    assert (kept["layer_shown"], kept["query"]) == (2, "5")
    assert kept["head"]["value"] == "2" and kept["patch"]["value"] == 7
    assert kept["head"]["choices"] == ["mean", "1", "2"]
    assert "patch 5 (layer 2, head 2)" in kept["attention_text"]
    # Another model (or a first look): what it lacks starts over, at its last layer and CLS.
    reset = vit_tab.look_inside(path, VIT_ID, 64, "9", "99", 99, None)
    assert (reset["layer_shown"], reset["query"], reset["head"]["value"]) == (3, "CLS", "mean")
    assert reset["layer"]["maximum"] == 3 and reset["patch"] == {
        "__type__": "update", "maximum": 36, "value": 1
    }
    # A click on the grid follows that patch and asks where it looks.
    inspection = vit.inspect_vit(sample_files()["chelsea"], VIT_ID)
    x, y = 1, 1  # in the top-left patch
    picked = vit_tab.pick_patch(path, VIT_ID, 1, "mean", SimpleNamespace(index=[x, y]))
    number = patch_at(inspection, x, y)
    assert picked["patch"] == number and picked["query"] == str(number)
    assert f"patch {number} (layer 1" in picked["attention_text"]
    assert vit_tab.typed_attention(path, VIT_ID, None, "mean", "CLS") == {}


def test_widgets_redraw_when_a_control_changes(photo):
    import html

    from widgets.vit import AttentionBrowser, PatchExplorer, WhyPatches

    from lab_api import png_pixels

    explorer = PatchExplorer(photo, VIT_ID)
    explorer.patch.value = 20
    i = explorer.inspection
    assert explorer.message.value == ""
    assert np.array_equal(png_pixels(explorer.steps.value), png_pixels(draw_patch_steps(i, 20)))
    assert np.array_equal(png_pixels(explorer.grid.value), png_pixels(draw_patch_grid(i, 20)))

    browser = AttentionBrowser(photo, VIT_ID)
    browser.head.value = "2"
    views = draw_attention_views(browser.inspection, browser.layer.value, "2", vit.CLS)
    assert np.array_equal(png_pixels(browser.heat_map.value), png_pixels(views.heat_map))
    assert "head 2" in views.text and html.escape(views.text) in browser.text.value
    browser.query.value = "99"
    assert "outside the 6×6 grid" in browser.text.value

    why = WhyPatches()
    assert "50,176" in why.table.value
    why.patch_size.value = 32
    assert "49" in why.table.value and "196" not in why.table.value
