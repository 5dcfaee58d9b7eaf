"""Models by name: DINOv2 with registers, DeiT, SigLIP, LAION's CLIP beside OpenAI's, torchvision
CNNs by builder name, the loaded-model budget, and every bad name refused in one sentence."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch
from tiny_models import (
    BEIT_ID,
    DEIT_ID,
    DINOV2_REG_ID,
    LAION_ID,
    REMOTE_CODE_ID,
    SIGLIP_ID,
    TINY_SPECS,
)

from vlmlab import clip, cnn, models, models_by_name, vit
from vlmlab.clip import pair as clip_pair
from vlmlab.cnn import depth as cnn_depth
from vlmlab.cnn import render as cnn_render
from vlmlab.cnn import gradcam
from vlmlab.errors import LabError, ModelUnavailableError

OPENAI_ID = "openai/clip-vit-base-patch32"


@pytest.fixture(autouse=True)
def _models_by_name_on(monkeypatch):
    """Models by name on, with the default cap, whatever the machine's environment says."""
    monkeypatch.setattr(models_by_name, "_policy", models_by_name.ByNamePolicy(True, 2048))


def _direct(model_class, model_id, image, **call):
    """A bare transformers forward with attentions, on the same pixels the lab used."""
    from transformers import AutoImageProcessor

    model = model_class.from_pretrained(model_id, attn_implementation="eager").eval()
    pixels = AutoImageProcessor.from_pretrained(model_id)(images=image, return_tensors="pt")
    with torch.no_grad():
        return model(**pixels, output_attentions=True, **call)


# ---------------------------------------------------------------------------------------------
# ViT family: special tokens counted from the model


def test_dinov2_with_registers_reports_its_registers_and_attends_where_the_model_does(chelsea):
    from transformers import Dinov2WithRegistersModel

    spec = TINY_SPECS[DINOV2_REG_ID]
    assert models.get_spec(DINOV2_REG_ID, "vit").by_name
    inspection = vit.inspect_vit(chelsea, DINOV2_REG_ID)
    grid = spec["grid"]
    assert inspection.grid == (grid, grid) and inspection.patch_size == spec["patch_size"]
    assert inspection.num_special == 1 + spec["registers"]
    registers = tuple(f"register {k}" for k in range(1, 5))
    assert inspection.special_tokens == ("CLS", *registers)
    assert "CLS + 4 registers" in vit.describe_model(inspection)
    # The learned 7×7 position table is laid on the 5×5 grid, as the model does.
    assert inspection.position_embeddings.shape[0] == 1 + grid * grid
    assert any("interpolated" in note for note in inspection.notes)

    direct = _direct(Dinov2WithRegistersModel, DINOV2_REG_ID, chelsea)
    expected = torch.stack([a[0] for a in direct.attentions]).numpy()  # (L, heads, T, T)
    np.testing.assert_allclose(inspection.attentions, expected, atol=1e-5)
    special = 1 + spec["registers"]
    for layer in (1, inspection.num_layers):
        for head in (1, inspection.num_heads):
            cls = vit.attention_map(inspection, layer, head, "CLS")
            row = expected[layer - 1, head - 1, 0]
            np.testing.assert_allclose(cls.weights, row[special:].reshape(grid, grid), atol=1e-5)
            assert cls.to_special == pytest.approx(row[:special].sum(), abs=1e-5)
            patch = vit.attention_map(inspection, layer, head, 7)  # patch 7 = token special + 6
            from_patch = expected[layer - 1, head - 1, special + 6, special:]
            np.testing.assert_allclose(patch.weights, from_patch.reshape(grid, grid), atol=1e-5)
    strongest = np.unravel_index(np.argmax(cls.weights), cls.weights.shape)
    assert np.argmax(row[special:]) == strongest[0] * grid + strongest[1]
    assert vit.query_label(inspection, 3) == "register 3"


def test_deit_has_a_cls_and_a_distillation_token_and_both_heads(chelsea):
    from transformers import DeiTForImageClassificationWithTeacher

    inspection = vit.inspect_vit(chelsea, DEIT_ID)
    assert inspection.num_special == 2
    assert inspection.special_tokens == ("CLS", "distillation")
    assert "CLS + distillation" in vit.describe_model(inspection)
    direct = _direct(DeiTForImageClassificationWithTeacher, DEIT_ID, chelsea)
    probabilities = direct.logits[0].softmax(-1)  # the mean of the class and distillation heads
    top = probabilities.topk(5)
    assert [p for _, p in inspection.predictions] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_beit_shows_patches_and_attention_and_says_it_has_relative_position_biases(chelsea):
    from transformers import BeitForImageClassification

    from vlmlab.vit.render import draw_patch_grid, draw_patch_steps
    from widgets.vit import position_embeddings

    grid = TINY_SPECS[BEIT_ID]["grid"]
    assert models.get_spec(BEIT_ID, "vit").by_name
    inspection = vit.inspect_vit(chelsea, BEIT_ID)
    assert inspection.grid == (grid, grid) and inspection.special_tokens == ("CLS",)
    assert inspection.patch_pixels.shape[0] == grid * grid
    assert draw_patch_grid(inspection, 3).size and draw_patch_steps(inspection, 3).size
    # Its attention (relative position biases included) is the model's own, CLS first.
    direct = _direct(BeitForImageClassification, BEIT_ID, chelsea)
    expected = torch.stack([a[0] for a in direct.attentions]).numpy()  # (L, heads, T, T)
    np.testing.assert_allclose(inspection.attentions, expected, atol=1e-5)
    cls = vit.attention_map(inspection, 2, 1, "CLS")
    np.testing.assert_allclose(cls.weights, expected[1, 0, 0, 1:].reshape(grid, grid), atol=1e-5)
    top = direct.logits[0].softmax(-1).topk(5)
    assert [p for _, p in inspection.predictions] == pytest.approx(top.values.tolist(), abs=1e-5)
    # No position table to compare: the view says why, in both faces.
    assert inspection.position_embeddings.shape[0] == 0
    assert "relative position biases" in inspection.position_note
    with pytest.raises(LabError, match="relative position biases"):
        vit.position_similarity(inspection)
    shown = position_embeddings(chelsea, BEIT_ID)
    assert "relative position biases" in shown.value and "⚠️" not in shown.value  # a note
    assert "CLS" in " ".join(models_by_name.describe_found(BEIT_ID, "vit", chelsea))


# ---------------------------------------------------------------------------------------------
# CLIP family: each scored as it was trained


def test_siglip_scores_each_label_with_its_own_sigmoid(chelsea):
    from transformers import AutoProcessor, SiglipModel

    labels = ["cat", "dog", "coffee cup", "red truck"]
    result = clip.score_labels(chelsea, labels, model=SIGLIP_ID)
    assert result.scoring == clip.SIGMOID and clip.SIGMOID_NOTE in result.notes
    model = SiglipModel.from_pretrained(SIGLIP_ID).eval()
    processor = AutoProcessor.from_pretrained(SIGLIP_ID)
    prompts = [clip.fill(clip.DEFAULT_TEMPLATE, label) for label in labels]

    def direct(padding):
        inputs = processor(
            text=prompts, images=chelsea, padding=padding, return_tensors="pt"
        )
        with torch.no_grad():
            return model(**inputs).logits_per_image[0]

    expected = direct("max_length")
    np.testing.assert_allclose(result.probabilities, expected.sigmoid().numpy(), atol=1e-5)
    assert not np.allclose(result.probabilities, expected.softmax(-1).numpy(), atol=1e-3)
    # Its text must be padded to max_length, as it was trained: shorter padding scores otherwise.
    assert not np.allclose(result.probabilities, direct(True).sigmoid().numpy(), atol=1e-4)
    matrix = clip.compare([chelsea], "a cat\na dog", model=SIGLIP_ID)
    assert matrix.scoring == clip.SIGMOID
    logits = matrix.cosines * matrix.logit_scale + matrix.logit_bias
    np.testing.assert_allclose(matrix.probabilities(), 1 / (1 + np.exp(-logits)))


def test_laion_clip_beside_openai_clip(chelsea):
    assert LAION_ID in models.choices("clip") and not models.get_spec(LAION_ID).by_name
    left, right = clip_pair.zero_shot_pair(chelsea, "cat, dog, coffee", (OPENAI_ID, LAION_ID))
    assert (left.model, right.model) == (OPENAI_ID, LAION_ID)
    assert "400 million" in left.trained_on and "LAION-2B" in right.trained_on
    assert "open" in right.trained_on and "never released" in left.trained_on
    for column in (left, right):
        assert column.result.scoring == clip.SOFTMAX
        assert column.result.probabilities.sum() == pytest.approx(1, abs=1e-5)
        alone = clip.score_labels(chelsea, "cat, dog, coffee", model=column.model)
        np.testing.assert_allclose(column.result.probabilities, alone.probabilities)
    assert not np.allclose(left.result.cosines, right.result.cosines)  # two different models
    matrices = clip_pair.similarity_pair([chelsea], "a cat\na cup", (OPENAI_ID, LAION_ID))
    assert [m.result.cosines.shape for m in matrices] == [(1, 2), (1, 2)]
    with pytest.raises(LabError, match="two different"):
        clip_pair.zero_shot_pair(chelsea, "cat", (LAION_ID, LAION_ID))


# ---------------------------------------------------------------------------------------------
# torchvision CNNs by builder name, random weights


@pytest.mark.parametrize(
    ("name", "evidence", "depth"),
    [("efficientnet_b0", "conv2", 82), ("convnext_tiny", "stage4", 59)],
)
def test_torchvision_cnns_by_name(chelsea, name, evidence, depth):
    spec = models.get_spec(name, "cnn")
    assert spec.by_name and spec.kind == "torchvision"
    view = cnn.feature_maps(chelsea, name, pretrained=False)
    arch = cnn.architecture(name)
    assert view.layer.name == arch.names[0]
    grid, layout = cnn_render.draw_features(view).grid, cnn_render.feature_layout(view)
    assert layout.count == view.maps.shape[0]  # a tile per channel of the network's first layer
    assert grid.width == layout.gap + layout.columns * (layout.tile_width + layout.gap)
    evidence_layer = arch.layer_at(arch.evidence_layer).name
    last = cnn.feature_maps(chelsea, name, evidence_layer, pretrained=False)
    assert last.layer.shape[1] == 7  # 224 / 32
    found = gradcam.grad_cam(chelsea, name, pretrained=False)
    assert found.layer == evidence and found.heat.shape == (7, 7)
    row = cnn_depth.depth_row(name)
    assert row.depth == depth and row.parameters == sum(
        p.numel() for p in models.load_model(name, topic="cnn", pretrained=False).model.parameters()
    )
    assert name in [r.model for r in cnn_depth.depth_table((name,))]


# ---------------------------------------------------------------------------------------------
# The loaded-model budget


def test_the_loaded_model_budget_drops_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(models, "_loaded", {})
    monkeypatch.setattr(models, "_max_loaded", 2)
    first = models.load_model(OPENAI_ID, topic="clip")
    models.load_model(LAION_ID, topic="clip")
    assert models.load_model(OPENAI_ID, topic="clip") is first  # used again: now the newest
    models.load_model(SIGLIP_ID, topic="clip")  # over budget: LAION's goes
    assert [m.spec.name for m in models.loaded_models()] == [OPENAI_ID, SIGLIP_ID]

    names = [OPENAI_ID, LAION_ID, SIGLIP_ID]
    seen, errors = [], []

    def user(order):
        try:
            for name in order * 3:
                loaded = models.load_model(name, topic="clip")
                seen.append(len(models.loaded_models()))
                assert loaded.spec.name == name  # the caller keeps its model, evicted or not
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=user, args=(o,)) for o in (names, names[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and seen and max(seen) <= 2
    assert len(models.loaded_models()) == 2


def test_one_clip_object_serves_the_vit_and_clip_tabs(monkeypatch, chelsea):
    """The ViT tab's attention maps, the CLIP tab's scores and its relevance maps come from one
    loaded copy of a CLIP (or SigLIP) checkpoint, and each view's numbers are the model's own."""
    from transformers import CLIPModel, CLIPProcessor, CLIPVisionModel

    from vlmlab.cache import LRUCache

    monkeypatch.setattr(models, "_loaded", {})
    monkeypatch.setattr(vit, "_inspections", LRUCache(maxsize=8))  # nothing computed yet
    clip.clear_caches()
    labels = ["cat", "dog", "cup"]
    seen = vit.inspect_vit(chelsea, OPENAI_ID)  # the ViT tab pointed at CLIP
    scores = clip.score_labels(chelsea, labels, model=OPENAI_ID)  # the CLIP tab
    maps = clip.relevance_maps(chelsea, labels, model=OPENAI_ID, templates=clip.DEFAULT_TEMPLATE)
    vit.inspect_vit(chelsea, SIGLIP_ID)
    clip.score_labels(chelsea, labels, model=SIGLIP_ID)
    assert [m.spec.name for m in models.loaded_models()] == [OPENAI_ID, SIGLIP_ID]
    shared = models.loaded_models()[0]
    for loaded in (models.load_model(OPENAI_ID, topic="clip"), vit.load_vit(OPENAI_ID),
                   clip.load_eager(OPENAI_ID), models.load_model(OPENAI_ID, topic="vit")):
        assert loaded is shared  # fmt: skip
    assert len(models.loaded_models()) == 2

    # The numbers are those of transformers' own CLIP, loaded as transformers loads it.
    model = CLIPModel.from_pretrained(OPENAI_ID).eval()
    inputs = CLIPProcessor.from_pretrained(OPENAI_ID)(
        text=[clip.DEFAULT_TEMPLATE.format(label) for label in labels], images=chelsea, return_tensors="pt", padding=True
    )
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.softmax(dim=-1)[0].numpy()
    np.testing.assert_allclose(scores.probabilities, expected, rtol=1e-5, atol=1e-6)
    direct = _direct(CLIPVisionModel, OPENAI_ID, chelsea)
    np.testing.assert_allclose(
        seen.attentions, torch.stack([a[0] for a in direct.attentions]).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(maps.logits, scores.logits, rtol=1e-4)  # one model's targets


def test_an_evicted_model_is_released_by_every_cache_that_held_it(monkeypatch, chelsea):
    """Past the budget a model leaves the registry and everything built on its weights (the
    feature-map extractor, the feature-visualisation graphs), so its memory is really freed."""
    import gc
    import weakref

    from vlmlab.cnn import featurevis as cnn_visualize

    monkeypatch.setattr(models, "_loaded", {})
    monkeypatch.setattr(models, "_max_loaded", 2)
    photo = chelsea.resize((96, 64))
    first = models.load_model("mobilenet_v2", topic="cnn", pretrained=False)
    conv = next(m for m in first.model.modules() if isinstance(m, torch.nn.Conv2d))
    held = [weakref.ref(first.model), weakref.ref(conv)]  # the extractors share its convs
    del conv
    cnn.capture_features(photo, "mobilenet_v2", pretrained=False)  # builds its extractor
    cnn_visualize.layer_module(first, cnn.layer_names("mobilenet_v2")[1])
    gradcam.grad_cam(photo, "mobilenet_v2", pretrained=False)
    key = first.key
    assert key in cnn._extractors
    del first
    for name in ("resnet18", "squeezenet1_1"):  # two more: the first is over the budget
        cnn.capture_features(photo, name, pretrained=False)
    assert [m.spec.name for m in models.loaded_models()] == ["resnet18", "squeezenet1_1"]
    assert key not in cnn._extractors
    assert not any(k[0] == key for k in list(cnn_visualize._graphs._items))
    gc.collect()
    assert [ref() for ref in held] == [None, None], "something still holds the model"
    # The survivors keep theirs, and the first loads again when asked.
    survivor = models.loaded_models()[-1]
    assert survivor.key in cnn._extractors
    assert cnn.capture_features(photo, "mobilenet_v2", pretrained=False).maps


# ---------------------------------------------------------------------------------------------
# Bad names: one sentence, within 5 s, nothing loaded


BAD_NAMES = [
    ("vit", "someone/not-here", "not on this machine"),
    ("vit", "https://huggingface.co/facebook/dinov2-small", "not a web address"),
    ("clip", "/etc/passwd", "not a file path"),
    ("clip", "../models/clip", "not a file path"),
    ("vit", "Salesforce/blip-image-captioning-base", "the VIT tab takes"),
    ("clip", DINOV2_REG_ID, "the CLIP tab takes CLIP, SigLIP"),
    ("vit", REMOTE_CODE_ID, "remote code"),
    ("cnn", "fasterrcnn_resnet50_fpn", "torchvision classifier by its builder name"),
    ("cnn", "swin_t", "not a CNN"),
]


@pytest.mark.parametrize(("topic", "name", "says"), BAD_NAMES)
def test_bad_names_are_refused_in_one_sentence(topic, name, says):
    before = list(models.loaded_models())
    start = time.perf_counter()
    with pytest.raises(LabError) as caught:
        models.get_spec(name, topic)
    assert time.perf_counter() - start < 5
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert models.loaded_models() == before


def test_the_size_cap_refuses_before_loading(monkeypatch):
    monkeypatch.setattr(models_by_name, "_accepted", {})
    monkeypatch.setattr(models_by_name, "_policy", models_by_name.ByNamePolicy(True, 0.001))
    with pytest.raises(LabError, match=r"over this lab's limit of 0 MB"):
        models.get_spec(DEIT_ID, "vit")
    with pytest.raises(LabError, match=r"efficientnet_b0 is 20 MB, over"):
        models.get_spec("efficientnet_b0", "cnn")


def test_curated_mode_refuses_every_name(monkeypatch):
    monkeypatch.setattr(models_by_name, "_accepted", {})
    monkeypatch.setattr(models_by_name, "_policy", None)
    monkeypatch.setenv("SPACE_ID", "someone/vlmlab")
    monkeypatch.delenv("VLMLAB_MODELS", raising=False)
    assert not models_by_name.policy().enabled  # a Space: curated by default
    with pytest.raises(LabError, match=r"switched off here \(--models curated\)"):
        models.get_spec(DEIT_ID, "vit")
    assert models.get_spec(LAION_ID, "clip").name == LAION_ID  # the registry still works
    models_by_name.set_policy("any")
    assert models.get_spec(DEIT_ID, "vit").by_name
    with pytest.raises(LabError, match="curated or any"):
        models_by_name.set_policy("everything")


def test_an_uncached_id_offline_is_a_model_unavailable_error():
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        models.get_spec("someone/not-here", "clip")


# ---------------------------------------------------------------------------------------------
# Through the app's API (gradio_client): ids in `model`, "your own model", two CLIPs


@pytest.fixture(scope="module")
def lab(launch_tabs):
    with launch_tabs(only=("cnn", "vit", "clip")) as app:
        yield app


API_REFUSALS = [
    ("/vit_model_by_name", {"model": "someone/not-here"}, "not on this machine"),
    ("/zero_shot", {"model": "https://huggingface.co/openai/clip-vit-base-patch32"}, "web address"),
    ("/vit_attention", {"model": "/etc/passwd", "layer": 1}, "not a file path"),
    ("/clip_model_by_name", {"model": DINOV2_REG_ID}, "the CLIP tab takes CLIP, SigLIP"),
    ("/vit_model_by_name", {"model": REMOTE_CODE_ID}, "remote code"),
    ("/classify", {"model": "fasterrcnn_resnet50_fpn"}, "torchvision classifier by its builder"),
    ("/cnn_model_by_name", {"model": "maxvit_t"}, "not a CNN"),
]


@pytest.mark.parametrize(("api_name", "values", "says"), API_REFUSALS)
def test_bad_names_through_the_api_get_one_sentence_fast(
    lab, chelsea, tmp_path, api_name, values, says
):
    from lab_api import arguments, refusal

    path = tmp_path / "chelsea.png"
    chelsea.save(path)
    before = list(models.loaded_models())
    photo = path if "photo" in str(arguments(lab.client, api_name)) else None
    start = time.perf_counter()
    message = refusal(lab.client, lab.url, api_name, photo, **values)
    assert time.perf_counter() - start < 5
    assert says in message and "\n" not in message
    assert models.loaded_models() == before


def test_over_the_size_cap_through_the_api(lab, monkeypatch):
    from lab_api import refusal

    monkeypatch.setattr(models_by_name, "_policy", models_by_name.ByNamePolicy(True, 0.01))
    before = list(models.loaded_models())
    message = refusal(lab.client, lab.url, "/clip_model_by_name", model=SIGLIP_ID)
    assert "over this lab's limit" in message and models.loaded_models() == before


def test_your_own_model_through_the_api(lab, chelsea, tmp_path):
    from lab_api import predict

    path = tmp_path / "chelsea.png"
    chelsea.save(path)
    chosen, found = predict(lab.client, "/vit_model_by_name", path, model=DEIT_ID)
    assert chosen["value"] == DEIT_ID and [DEIT_ID, DEIT_ID] not in chosen["choices"]
    assert DEIT_ID in [name for _, name in chosen["choices"]]
    assert "special tokens before the patches: CLS, distillation" in found
    chosen, found = predict(lab.client, "/cnn_model_by_name", model="convnext_tiny")
    assert chosen["value"] == "convnext_tiny" and "Grad-CAM looks at stage4" in found
    chosen, found = predict(lab.client, "/clip_model_by_name", model=SIGLIP_ID)
    assert "sigmoid for each label" in found and "padded to 64 tokens" in found
    heat, *_ = predict(lab.client, "/vit_attention", path, model=DINOV2_REG_ID, layer=1)
    assert heat
    left, left_text, right, right_text = predict(
        lab.client,
        "/zero_shot_pair",
        path,
        labels="cat, dog",
        model=OPENAI_ID,
        other_model=SIGLIP_ID,
    )
    assert {c["label"] for c in left["confidences"]} == {"cat", "dog"}
    assert "400 million" in left_text and "WebLI" in right_text and "sigmoid" in right_text
    # Relevance maps follow CLIP's class token: for SigLIP the tab says so in place.
    gallery, note = predict(lab.client, "/clip_relevance", path, labels="cat", model=SIGLIP_ID)
    assert not gallery and "SigLIP" in note and "no maps" in note


# Where the API takes a model by name: (endpoint, parameter, a curated name among the examples).
BY_NAME_PARAMETERS = [
    ("/classify", "model", "alexnet"),
    ("/vit_attention", "model", "google/vit-base-patch16-224"),
    ("/zero_shot", "model", OPENAI_ID),
    ("/zero_shot_pair", "model", LAION_ID),
    ("/zero_shot_pair", "other_model", OPENAI_ID),
]


def test_view_api_says_a_model_is_free_text_with_curated_examples(lab):
    endpoints = lab.client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for api_name, parameter, curated in BY_NAME_PARAMETERS:
        found = {p["parameter_name"]: p for p in endpoints[api_name]["parameters"]}[parameter]
        schema = found["type"]
        assert schema["type"] == "string" and "enum" not in schema, (api_name, schema)
        assert curated in schema["examples"], (api_name, schema)
        assert found["python_type"]["type"] == "str"
        assert "free text" in found["python_type"]["description"], api_name
    shown = lab.client.view_api(print_info=False, return_format="str")
    assert re.search(r"\[Dropdown\] model: str .*\(free text: one of alexnet, vgg16", shown)
    # A choice that takes no names stays a list of choices.
    order = {p["parameter_name"]: p for p in endpoints["/feature_maps"]["parameters"]}
    assert "enum" in order["order"]["type"]


def test_with_models_by_name_off_the_api_lists_only_the_curated_models(monkeypatch):
    from demo.own_model import model_dropdown

    monkeypatch.setattr(models_by_name, "_policy", models_by_name.ByNamePolicy(False, 2048))
    assert model_dropdown("clip").api_info()["enum"] == models.choices("clip")


def test_widgets_accept_models_by_name(chelsea):
    from widgets.clip import ZeroShotClassifier
    from widgets.cnn import PredictionView

    widget = ZeroShotClassifier(chelsea, model=SIGLIP_ID)
    assert widget.model.value == SIGLIP_ID and OPENAI_ID in widget.model.options
    with pytest.raises(LabError, match="web address"):
        ZeroShotClassifier(chelsea, model="https://example.com/model")
    with pytest.raises(LabError, match="torchvision classifier"):
        PredictionView(chelsea, model="raft_large")
