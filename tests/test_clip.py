"""CLIP engine: zero-shot and similarity against the model's own computation, the caches, label
edge cases, the robustness probe, the renderers and the widgets (tiny random-weight CLIPs)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from vlmlab import clip
from vlmlab.clip import probe as clip_probe
from vlmlab.clip import render as clip_render
from vlmlab.errors import LabError
from vlmlab.models import load_model

B32 = "openai/clip-vit-base-patch32"
L14 = "openai/clip-vit-large-patch14"  # tiny too, with other shapes (42 px, patch 6, width 48)
LABELS = ["cat", "dog", "cup of coffee", "rocket"]


@pytest.fixture(autouse=True)
def fresh_caches():
    clip.clear_caches()
    yield
    clip.clear_caches()


@contextlib.contextmanager
def count_forwards(loaded):
    """Count the text and vision encoders' forward calls (and their batch sizes)."""
    calls = {"text": [], "vision": []}
    handles = [
        loaded.model.text_model.register_forward_hook(
            lambda module, args, kwargs, out: calls["text"].append(len(kwargs["input_ids"])),
            with_kwargs=True,
        ),
        loaded.model.vision_model.register_forward_hook(
            lambda module, args, kwargs, out: calls["vision"].append(len(kwargs["pixel_values"])),
            with_kwargs=True,
        ),
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def direct_embeddings(loaded, images, prompts):
    """CLIP's own projected embeddings, unit length, straight from the model."""
    inputs = loaded.processor(text=prompts, images=images, return_tensors="pt", padding=True)
    with torch.inference_mode():
        image = loaded.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        text = loaded.model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).pooler_output
    return image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Zero-shot against CLIPModel


@pytest.mark.parametrize("name", [B32, L14])
def test_one_template_gives_the_softmax_of_clips_own_logits_per_image(name, chelsea):
    loaded = load_model(name, topic="clip")
    prompts = [f"a photo of a {label}." for label in LABELS]
    inputs = loaded.processor(text=prompts, images=chelsea, return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = loaded.model(**inputs).logits_per_image.softmax(dim=-1)[0].numpy()

    result = clip.score_labels(chelsea, LABELS, model=name)
    assert result.labels == tuple(LABELS)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
    assert result.logit_scale == pytest.approx(loaded.model.logit_scale.exp().item())
    ranked = clip.zero_shot(chelsea, LABELS, model=name)
    assert [label for label, _ in ranked] == [LABELS[i] for i in np.argsort(-expected)]
    assert sum(p for _, p in ranked) == pytest.approx(1.0)
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)


def test_several_templates_are_ensembled_like_clip(coffee):
    loaded = load_model(B32, topic="clip")
    templates = clip.TEMPLATE_SETS["CLIP's 7 best ImageNet templates"]
    per_template = []
    for template in templates:
        image, text = direct_embeddings(loaded, coffee, [template.replace("{}", x) for x in LABELS])
        per_template.append(text)
    mean = torch.stack(per_template).mean(dim=0)
    weights = mean / mean.norm(dim=-1, keepdim=True)  # (L, D)
    cosines = (image @ weights.T)[0]
    expected = (cosines * loaded.model.logit_scale.exp().item()).softmax(dim=-1).numpy()

    result = clip.score_labels(coffee, "\n".join(LABELS), templates="\n".join(templates))
    np.testing.assert_allclose(result.cosines, cosines.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
    single = clip.score_labels(coffee, LABELS)
    assert not np.allclose(single.probabilities, result.probabilities)  # the ensemble matters
    rows = result.table()
    assert rows[0][1] == result.probabilities.max()
    assert rows[0][3] == pytest.approx(rows[0][2] * result.logit_scale)


def test_similarity_is_the_cosine_of_clips_projected_embeddings(chelsea, coffee):
    loaded = load_model(L14, topic="clip")
    texts = ["a photo of a cat", "a cup of coffee", "a rocket on its launch pad"]
    image, text = direct_embeddings(loaded, [chelsea, coffee], texts)
    cosines = clip.similarity([chelsea, coffee], "\n".join(texts), model=L14)
    assert cosines.shape == (2, 3)
    np.testing.assert_allclose(cosines, (image @ text.T).numpy(), rtol=1e-5, atol=1e-6)
    matrix = clip.compare([chelsea, coffee], texts, model=L14)
    inputs = loaded.processor(
        text=texts, images=[chelsea, coffee], return_tensors="pt", padding=True
    )
    with torch.inference_mode():
        logits = loaded.model(**inputs).logits_per_image
    np.testing.assert_allclose(matrix.probabilities(), logits.softmax(-1).numpy(), atol=1e-6)


def test_captions_keep_their_commas_and_one_image_is_a_list_of_one(chelsea):
    matrix = clip.compare(chelsea, "a cat, sitting\na dog")
    assert matrix.texts == ("a cat, sitting", "a dog") and matrix.cosines.shape == (1, 2)


# ---------------------------------------------------------------------------------------------
# Caches


def test_a_repeated_label_set_runs_only_the_image_encoder(chelsea, coffee):
    loaded = load_model(B32, topic="clip")
    with count_forwards(loaded) as calls:
        clip.zero_shot(chelsea, LABELS)
        assert sum(calls["text"]) == len(LABELS) and calls["vision"] == [1]
        clip.zero_shot(coffee, LABELS)  # same labels, new photo
        assert sum(calls["text"]) == len(LABELS) and calls["vision"] == [1, 1]
        clip.zero_shot(coffee, LABELS + ["astronaut"])  # only the new label is encoded
        assert calls["text"][-1] == 1 and calls["vision"] == [1, 1]  # the photo is cached too
        clip.zero_shot(chelsea, ["tiger", "cat"], templates=["a photo of a {}.", "art of a {}."])
        assert calls["text"][-1] == 3  # "cat" with the first template was cached


def test_the_text_cache_is_bounded(chelsea, monkeypatch):
    small = clip.LRUCache(maxsize=3)
    monkeypatch.setattr(clip, "_text_embeddings", small)
    clip.zero_shot(chelsea, ["a", "b", "c", "d", "e"])
    assert len(small) == 3


def test_a_lecture_halls_batch_gets_each_callers_own_result_from_one_forward(chelsea, coffee):
    rocket = chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    requests = [
        clip.ZeroShotRequest(chelsea, "cat, dog"),
        clip.ZeroShotRequest(coffee, "cup of coffee\nrocket\ncat"),
        clip.ZeroShotRequest(rocket, ",,,"),  # bad: comes back as its error, in its place
        clip.ZeroShotRequest(coffee, "cat, dog", templates="a photo of a {}.\nart of a {}."),
        clip.ZeroShotRequest(rocket, "rocket, cat", model=L14),
    ]
    expected = [
        clip.score_labels(chelsea, "cat, dog").probabilities,
        clip.score_labels(coffee, "cup of coffee\nrocket\ncat").probabilities,
        None,
        clip.score_labels(
            coffee, "cat, dog", templates=["a photo of a {}.", "art of a {}."]
        ).probabilities,
        clip.score_labels(rocket, "rocket, cat", model=L14).probabilities,
    ]
    clip.clear_caches(texts=False)  # the images must be encoded again, together
    b32, l14 = load_model(B32, topic="clip"), load_model(L14, topic="clip")
    with count_forwards(b32) as calls_b32, count_forwards(l14) as calls_l14:
        results = clip.zero_shot_batch(requests)
    assert calls_b32["vision"] == [2]  # chelsea and coffee once each, in one forward
    assert calls_l14["vision"] == [1] and calls_b32["text"] == calls_l14["text"] == []
    assert isinstance(results[2], LabError) and "at least one label" in str(results[2])
    for result, probabilities in zip(results, expected):
        if probabilities is not None:
            np.testing.assert_allclose(result.probabilities, probabilities, atol=1e-6)
    assert results[1].labels == ("cup of coffee", "rocket", "cat")


# ---------------------------------------------------------------------------------------------
# Labels and templates


@pytest.mark.parametrize(
    "labels, message",
    [
        ("", "Please type at least one label (one per line or separated by commas)."),
        (" , ,\n\n ,", "Please type at least one label"),
        (["  ", "\n"], "Please type at least one label"),
        ("\x00\x00", "Please type at least one label"),
        (",".join(f"label {i}" for i in range(101)), "at most 100 labels at a time; you gave 101"),
        (42, "The labels must be text, or a list of texts."),
        (["cat", None], "The labels must be text, or a list of texts."),
    ],
)
def test_bad_labels_get_one_clear_sentence(labels, message, chelsea):
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        clip.zero_shot(chelsea, labels)


def test_labels_are_stripped_deduplicated_and_cleaned(chelsea):
    result = clip.score_labels(chelsea, "  Cat ,cat\n dog  \n\n😺 kitten, c\x00a\x00t, 🚀")
    assert result.labels == ("Cat", "dog", "😺 kitten", "🚀")
    assert result.probabilities.sum() == pytest.approx(1.0)
    assert len(clip.zero_shot(chelsea, [f"label {i}" for i in range(100)])) == 100


def test_a_label_longer_than_the_token_limit_is_cut_with_a_note(chelsea):
    loaded = load_model(B32, topic="clip")
    tokenizer, limit = loaded.processor.tokenizer, clip.token_limit(loaded)
    assert limit == loaded.model.config.text_config.max_position_embeddings == 77
    long = " ".join(["cat"] * 100)
    emoji = "😺" * 60  # several byte tokens per emoji: none may be kept by half
    result = clip.score_labels(chelsea, [long, emoji, "dog"])
    assert len(result.notes) == 2 and "CLIP reads at most 77 tokens" in result.notes[0]
    cut_long, cut_emoji, dog = result.labels
    assert dog == "dog" and long.startswith(cut_long) and emoji.startswith(cut_emoji)
    for cut in (cut_long, cut_emoji):
        length = len(tokenizer(clip.fill(clip.DEFAULT_TEMPLATE, cut)).input_ids)
        assert limit - 3 <= length <= limit  # as much as fits, and no more
    assert result.probabilities.sum() == pytest.approx(1.0)


def test_the_token_limit_comes_from_the_models_config(chelsea):
    loaded = load_model(B32, topic="clip")
    config = loaded.model.config.text_config
    original = config.max_position_embeddings
    config.max_position_embeddings = 12
    try:
        result = clip.score_labels(chelsea, "one two three four five six seven eight nine ten")
    finally:
        config.max_position_embeddings = original
    assert "at most 12 tokens" in result.notes[0]
    assert result.labels[0] == "one two three four five"  # 12 - <start> "a photo of a ." <end>


def test_templates_take_any_slot_name_and_never_run_format(chelsea):
    assert clip.parse_templates("a photo of a {label}.\nart of the {object}") == (
        "a photo of a {}.",
        "art of the {}",
    )
    assert clip.fill("a {} here", "{0.__class__}") == "a {0.__class__} here"
    with pytest.raises(LabError, match=r"needs exactly one \{\} where the label goes.*has 0"):
        clip.zero_shot(chelsea, "cat", templates="a photo of a cat")
    with pytest.raises(LabError, match="has 2"):
        clip.zero_shot(chelsea, "cat", templates=["{} and {}"])
    with pytest.raises(LabError, match="at least one template"):
        clip.zero_shot(chelsea, "cat", templates=" \n ")


def test_unknown_models_and_images_are_refused_clearly(chelsea):
    with pytest.raises(LabError, match="Unknown model 'alexnet'; choose one of: openai/clip"):
        clip.zero_shot(chelsea, "cat", model="alexnet")
    with pytest.raises(LabError, match="could not be found"):
        clip.similarity(["/no/such/photo.png"], "a cat")
    with pytest.raises(LabError, match="at most 16 images"):
        clip.similarity([chelsea] * 17, "a cat")
    with pytest.raises(LabError, match="at least one image"):
        clip.similarity([], "a cat")


# ---------------------------------------------------------------------------------------------
# CLIP over ImageNet, and the robustness probe


def test_clip_classifies_over_the_imagenet_names_with_their_text_embedded_once(chelsea, coffee):
    names = clip.imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench"
    loaded = load_model(B32, topic="clip")
    with count_forwards(loaded) as calls:
        first, second = clip.zero_shot_imagenet([chelsea, coffee])
        encoded = sum(calls["text"])
        clip.zero_shot_imagenet([chelsea.rotate(90, expand=True)])
        assert sum(calls["text"]) == encoded  # the 1000 names are embedded once
    assert encoded == len({n.casefold() for n in names}) == len(first.labels)
    assert set(first.labels) <= set(names)
    assert first.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(first.probabilities, second.probabilities)


def test_distortions_change_the_photo_as_named(chelsea):
    pixels = {
        name: np.asarray(clip_probe.distort(chelsea, name))
        for name in ("original", "blur", "grayscale", "sketch", "noise")
    }
    assert all(p.shape == pixels["original"].shape for p in pixels.values())
    gray = pixels["grayscale"]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    sketch = pixels["sketch"]
    assert np.median(sketch) > 200 and sketch.min() < 60  # white paper, dark strokes
    rough = lambda p: np.abs(np.diff(p.astype(float), axis=1)).mean()
    assert rough(pixels["blur"]) < rough(pixels["original"]) < rough(pixels["noise"])
    stronger = np.asarray(clip_probe.distort(chelsea, "blur", strength=1.0))
    assert rough(stronger) < rough(pixels["blur"])
    with pytest.raises(LabError, match="strength must be a number between 0 and 1"):
        clip_probe.distort(chelsea, "blur", strength=float("nan"))
    with pytest.raises(LabError, match="Unknown distortion 'melt'"):
        clip_probe.probe(chelsea, distortions=["melt"])


def test_the_probe_puts_clip_and_the_cnn_side_by_side(chelsea):
    result = clip_probe.probe(chelsea, distortions=["blur", "sketch"], cnn_model="mobilenet_v2")
    assert [c.distortion for c in result.columns] == ["original", "blur", "sketch"]
    original = result.columns[0]
    assert original.cnn.top in {"tabby", "tiger cat", "Egyptian cat"}  # real ImageNet weights
    assert len(original.clip.predictions) == 3 and original.clip.error is None
    assert original.clip.top in clip.imagenet_classes()
    for which in ("clip", "cnn"):
        held = result.held(which)
        assert held[0] is True and all(isinstance(h, bool) for h in held)
    image = clip_render.draw_probe(result)
    assert image.width > 3 * 200 and image.mode == "RGB"


def test_a_missing_cnn_shows_its_message_in_its_cells_and_clip_still_answers(chelsea):
    result = clip_probe.probe(chelsea, distortions=["grayscale"], cnn_model="resnet50")
    for column in result.columns:
        assert column.clip.error is None and column.clip.predictions
        assert column.cnn.predictions == () and "ResNet-50" in column.cnn.error
    assert result.held("cnn") == [None, None]
    picture = np.asarray(clip_render.draw_probe(result)).astype(int)

    def bars(colour):  # pixels of a model's bars: its colour at 35% over white
        tint = 255 + 0.35 * (np.array(colour) - 255)
        return int((np.abs(picture - tint).sum(axis=-1) < 12).sum())

    assert bars((0x4E, 0x79, 0xA7)) > 20 and bars((0xE1, 0x57, 0x59)) == 0  # CLIP's, no CNN's
    assert any("could not answer" in line and "ResNet-50" in line
               for line in clip_render.describe_probe(result))  # fmt: skip


def test_the_users_kernel_is_applied_as_the_convolution_tab_would(chelsea):
    from vlmlab.kernels import apply_kernel, parse_kernel

    box = "1/9 1/9 1/9\n1/9 1/9 1/9\n1/9 1/9 1/9"
    blurred = np.asarray(clip_probe.distort(chelsea, "kernel", kernel_text=box))
    expected = np.clip(np.rint(apply_kernel(chelsea, parse_kernel(box))), 0, 255)
    np.testing.assert_array_equal(blurred, expected.astype(np.uint8))
    edges = np.asarray(clip_probe.distort(chelsea, "kernel", kernel_text="0 1 0\n1 -4 1\n0 1 0"))
    assert edges.max() == 255 and np.median(edges) < 60  # edge strength, stretched
    gaussian = np.asarray(clip_probe.distort(chelsea, "kernel", kernel_text="1 2 1\n2 4 2\n1 2 1"))
    assert abs(gaussian.mean() - np.asarray(chelsea).mean()) < 3  # divided by its sum, 16
    with pytest.raises(LabError, match="Convolution tab first"):
        clip_probe.distort(chelsea, "kernel", kernel_text="  ")
    with pytest.raises(LabError):
        clip_probe.distort(chelsea, "kernel", kernel_text="1 2\n3 4")


# ---------------------------------------------------------------------------------------------
# Drawing


def test_the_similarity_heat_map_outlines_true_pairs_only_when_asked(chelsea, coffee):
    matrix = clip.compare([chelsea, coffee], ["a cat", "a cup of coffee"])

    def orange(image):
        a = np.asarray(image).astype(int)
        return int((np.abs(a - np.array([0xF2, 0x8E, 0x2B])).sum(axis=2) < 30).sum())

    plain = clip_render.draw_similarity(matrix, [chelsea, coffee], ["cat", "coffee"])
    paired = clip_render.draw_similarity(matrix, [chelsea, coffee], ["cat", "coffee"], pairs=True)
    soft = clip_render.draw_similarity(matrix, [chelsea, coffee], softmax=True)
    assert orange(paired) > orange(plain) + 500  # (the cat thumbnail has some orange fur)
    assert np.asarray(soft).shape != np.asarray(plain).shape or not np.array_equal(soft, plain)
    np.testing.assert_allclose(matrix.probabilities().sum(axis=1), 1.0, rtol=1e-6)


def test_zero_shot_bars_are_one_per_label_most_likely_on_top(chelsea):
    result = clip.score_labels(chelsea, LABELS)
    image = np.asarray(clip_render.draw_zero_shot(result)).astype(int)
    bar = np.abs(image - (0x4E, 0x79, 0xA7)).sum(axis=-1) < 30  # the bars' colour
    rows = np.flatnonzero(bar.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # one run of rows per bar
    assert len(bands) == len(LABELS)
    lengths = np.array([bar[band].sum(axis=1).max() for band in bands], dtype=float)
    probabilities = np.array([p for _, p, _, _ in result.table(10)])
    assert list(lengths) == sorted(lengths, reverse=True)
    np.testing.assert_allclose(lengths / lengths[0], probabilities / probabilities[0], atol=0.05)


# ---------------------------------------------------------------------------------------------
# Widgets: one engine, two faces


def test_the_zero_shot_widget_reacts_to_its_controls(chelsea):
    from lab_api import png_pixels

    from widgets.clip import ZeroShotClassifier

    def bars(labels, templates):  # what the engine computes and draws for these settings
        result = clip.score_labels(widget.image, labels, templates=templates)
        return png_pixels(clip_render.draw_zero_shot(result))

    widget = ZeroShotClassifier(chelsea, labels="cat, dog")
    assert "Logit scale" in widget.notes.value
    widget.labels.value = "cat, dog, rocket"
    one = bars("cat, dog, rocket", clip.DEFAULT_TEMPLATE)
    assert np.array_equal(png_pixels(widget.picture.value), one)
    widget.template_set.value = "CLIP's 7 best ImageNet templates"
    seven = clip.TEMPLATE_SETS["CLIP's 7 best ImageNet templates"]
    assert widget.templates.value.split("\n") == list(seven) and len(seven) == 7
    assert np.array_equal(png_pixels(widget.picture.value), bars("cat, dog, rocket", seven))
    widget.labels.value = " , "
    assert "at least one label" in widget.notes.value


def test_the_similarity_widget_reacts_to_its_controls():
    from lab_api import png_pixels

    from widgets.clip import SimilarityExplorer

    widget = SimilarityExplorer(samples=["chelsea", "coffee"], texts="a cat\na cup of coffee")
    widget.softmax.value = True
    matrix = clip.compare(widget.images, ["a cat", "a cup of coffee"])
    drawn = clip_render.draw_similarity(
        matrix, widget.images, widget.names, softmax=True, pairs=True
    )
    assert np.array_equal(png_pixels(widget.picture.value), png_pixels(drawn))
    widget.texts.value = "a cat\na cup of coffee\na rocket"
    assert "2 images × 3 texts" in widget.notes.value
