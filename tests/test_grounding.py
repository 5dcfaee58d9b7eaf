"""Where in the photo: CLIP relevance, per-word caption maps and VQA grounding, each checked
against what a direct transformers forward gives on the tiny checkpoints (loaded through the
lab's own loading code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmlab import captioning, clip, vqa
from vlmlab.errors import LabError
from vlmlab.grounding import MAX_MAPS, NOTE
from vlmlab.models import load_model

B32 = "openai/clip-vit-base-patch32"
L14 = "openai/clip-vit-large-patch14"  # 3 vision layers: start layers 1, 2 and 3 differ
BLIP = "Salesforce/blip-image-captioning-base"
BLIP_VQA = "Salesforce/blip-vqa-base"
VILT = "dandelin/vilt-b32-finetuned-vqa"
TEXTS = ["a photo of a cat", "a dog on the grass", "a red truck"]


# ---------------------------------------------------------------------------------------------
# CLIP: the rule of Chefer et al., written out again over a whole-model forward


def reference_relevance(name: str, image, texts: list[str], start_layer: int) -> np.ndarray:
    """As their CLIP notebook: the image repeated once per text, the diagonal of
    logits_per_image as the target, gradients at every vision layer's attention probabilities
    from a single full forward; R = I, R += mean_h((grad * A)^+) @ R for layers ≥ start."""
    loaded = load_model(name, topic="clip", attn_implementation="eager")
    model, processor = loaded.model, loaded.processor
    inputs = processor(text=texts, images=[image] * len(texts), return_tensors="pt", padding=True)
    with torch.enable_grad():
        output = model(**inputs, output_attentions=True)
        attentions = output.vision_model_output.attentions  # one (K, heads, T, T) per layer
        target = output.logits_per_image.diagonal().sum()
        grads = torch.autograd.grad(target, attentions)
    count, tokens = len(texts), attentions[0].shape[-1]
    result = torch.eye(tokens).repeat(count, 1, 1)
    for layer in range(start_layer - 1, len(attentions)):
        weighted = grads[layer] * attentions[layer].detach()
        cam = weighted.clamp(min=0).mean(dim=1)
        result = result + torch.bmm(cam, result)
    side = int(round((tokens - 1) ** 0.5))
    return result[:, 0, 1:].reshape(count, side, side).numpy()


@pytest.mark.parametrize("start_layer", [None, 1, 2])
def test_relevance_equals_the_rule_over_a_full_forward(chelsea, start_layer):
    got = clip.relevance(chelsea, TEXTS, model=L14, start_layer=start_layer)
    layers = load_model(L14, topic="clip").model.config.vision_config.num_hidden_layers
    expected = reference_relevance(L14, chelsea, TEXTS, start_layer or layers)
    assert got.shape == (3, 7, 7) == expected.shape  # the tiny L/14's 7×7 grid
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert (got >= 0).all()
    # Each text gets its own map, and starting elsewhere changes them: nothing passes by accident.
    assert not np.allclose(got[0], got[2], rtol=1e-3)
    if start_layer == 1:
        last = clip.relevance(chelsea, TEXTS, model=L14)
        assert not np.allclose(got, last, rtol=1e-3)


def test_relevance_maps_target_the_zero_shot_logit_and_cap_what_they_draw(chelsea):
    labels = ["cat", "dog", "rocket"]
    found = clip.relevance_maps(chelsea, labels, templates=["a photo of a {}."])
    scores = clip.score_labels(chelsea, labels, templates=["a photo of a {}."])
    np.testing.assert_allclose(found.logits, scores.logits, rtol=1e-4)
    assert found.texts == tuple(labels) and found.grid == (4, 4) and found.maps.shape == (3, 4, 4)
    assert found.image.size == (32, 32)  # the tiny B/32 sees 32×32 pixels
    assert found.notes[0] == NOTE and found.start_layer == found.layers == 2

    many = clip.relevance_maps(chelsea, [f"label {i}" for i in range(10_000)])
    assert many.maps.shape == (MAX_MAPS, 4, 4)
    assert any(f"first {MAX_MAPS} of your 10,000 labels" in note for note in many.notes)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ("", {}, "at least one label"),
        (" ,\n\x00 ", {}, "at least one label"),
        ("cat", {"start_layer": 3}, "layer must be a whole number from 1 to 2"),
        ("cat", {"start_layer": 1.5}, "layer must be a whole number"),
        ("cat", {"model": "no/such-model"}, "not on this machine"),  # a model by name, not cached
        ("x" * 300_000, {}, "too long"),
    ],
)
def test_relevance_refuses_bad_input_with_one_sentence(chelsea, labels, kwargs, message):
    with pytest.raises(LabError, match=message):
        clip.relevance_maps(chelsea, labels, **kwargs)


def test_relevance_of_long_and_odd_text_is_cut_with_a_note(chelsea):
    found = clip.relevance_maps(chelsea, ["cat " * 25_000 + "\x00dog"])  # 100k characters
    assert found.maps.shape == (1, 4, 4) and np.isfinite(found.maps).all()
    assert any("77 tokens" in note for note in found.notes)
    with pytest.raises(LabError, match="at most 100 texts"):
        clip.relevance(chelsea, [f"text {i}" for i in range(10_000)])


def test_a_model_without_attention_maps_is_named_in_one_sentence(chelsea):
    sdpa = load_model(B32, topic="clip", attn_implementation="sdpa")
    with pytest.raises(LabError, match="returned no attention maps.*eager"):
        clip.grounding._relevance(sdpa, chelsea, ("cat",), (clip.SLOT,), 2, ())


# ---------------------------------------------------------------------------------------------
# Captioning: the decoder's cross-attention from the position that predicted each token


def reference_cross_attention(image, ids: list[int]) -> np.ndarray:
    """A direct teacher-forced forward of BlipForConditionalGeneration's parts (its own forward
    drops the decoder's attentions): per layer, each position's cross-attention, mean over heads.
    (layers, positions, rows, cols), the image's CLS left out."""
    loaded = load_model(BLIP, topic="captioning")
    model, processor = loaded.model, loaded.processor
    pixels = processor(images=image, return_tensors="pt").pixel_values
    with torch.no_grad():
        seen = model.vision_model(pixel_values=pixels).last_hidden_state
        output = model.text_decoder(
            input_ids=torch.tensor([ids]), encoder_hidden_states=seen, output_attentions=True
        )
    cross = torch.stack(output.cross_attentions)[:, 0].mean(dim=1)[..., 1:]  # (L, positions, P)
    side = int(round(cross.shape[-1] ** 0.5))
    return cross.reshape(*cross.shape[:2], side, side).numpy()


@pytest.mark.parametrize("layer", [None, 1, 2])
def test_ground_equals_the_decoders_cross_attention_teacher_forced(chelsea, layer):
    text = "a cat sitting on a red couch"
    got = captioning.ground(chelsea, text, layer=layer)
    tokenizer = load_model(BLIP, topic="captioning").processor.tokenizer
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = load_model(BLIP, topic="captioning").model.config.text_config.bos_token_id
    cross = reference_cross_attention(chelsea, [bos, *ids])  # (L, 1 + tokens, 6, 6)
    expected = cross.mean(axis=0) if layer is None else cross[layer - 1]
    assert [word for word, _ in got] == tokenizer.tokenize(text)
    maps = np.stack([heat for _, heat in got])
    assert maps.shape == (len(ids), 6, 6) and (maps >= 0).all()
    # token i is predicted at position i (after [DEC]): rows 0…n-1, not 1…n
    np.testing.assert_allclose(maps, expected[: len(ids)], rtol=1e-5, atol=1e-7)
    assert not np.allclose(maps, expected[1:], rtol=1e-2)  # one position off does not pass


def test_streamed_maps_are_the_cross_attention_of_the_caption_they_stream(chelsea):
    parts = list(captioning.caption_stream(chelsea, max_new_tokens=12, maps=True))
    final = parts[-1]
    assert final.done and final.maps.shape == (len(final.tokens), 6, 6)
    for part in parts[:-1]:  # each partial caption carries its own words' maps, as they came
        assert part.maps.shape[0] == len(part.tokens)
        np.testing.assert_allclose(part.maps, final.maps[: len(part.tokens)], atol=1e-6)
    bos = load_model(BLIP, topic="captioning").model.config.text_config.bos_token_id
    ids = [bos, *(token.token_id for token in final.tokens)]
    expected = reference_cross_attention(chelsea, ids).mean(axis=0)[: len(final.tokens)]
    np.testing.assert_allclose(final.maps, expected, rtol=1e-4, atol=1e-6)
    plain = captioning.caption(chelsea, max_new_tokens=12)
    assert plain.maps is None and plain.text == final.text  # maps change nothing in the caption


def test_two_captions_streamed_at_once_keep_their_own_maps(chelsea, coffee):
    from concurrent.futures import ThreadPoolExecutor

    def streamed(photo):
        return list(captioning.caption_stream(photo, max_new_tokens=10, maps=True))[-1]

    captioning.clear_caches()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(streamed, [chelsea, coffee]))
    bos = load_model(BLIP, topic="captioning").model.config.text_config.bos_token_id
    for photo, found in zip([chelsea, coffee], results, strict=True):
        ids = [bos, *(token.token_id for token in found.tokens)]
        expected = reference_cross_attention(photo, ids).mean(axis=0)[: len(found.tokens)]
        np.testing.assert_allclose(found.maps, expected, rtol=1e-4, atol=1e-6)


def test_beam_search_maps_are_the_chosen_beams(chelsea):
    found = captioning.caption(chelsea, num_beams=3, max_new_tokens=8, maps=True)
    bos = load_model(BLIP, topic="captioning").model.config.text_config.bos_token_id
    ids = [bos, *(token.token_id for token in found.tokens)]
    expected = reference_cross_attention(chelsea, ids).mean(axis=0)[: len(found.tokens)]
    np.testing.assert_allclose(found.maps, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "Please give a caption to ground"),
        ("  \x00\n ", {}, "Please give a caption to ground"),
        ("a cat", {"layer": 0}, "layer must be a whole number from 1 to 2"),
        ("a cat", {"layer": True}, "layer must be a whole number"),
        ("x" * 300_000, {}, "too long"),
        (b"a cat", {}, "must be text"),
    ],
)
def test_ground_refuses_bad_input_with_one_sentence(chelsea, text, kwargs, message):
    with pytest.raises(LabError, match=message):
        captioning.ground(chelsea, text, **kwargs)


def test_a_long_caption_is_grounded_as_far_as_the_model_reads(chelsea):
    found = captioning.ground_caption(chelsea, "a cat\x00 " * 20_000)  # 100k+ characters
    limit = captioning.text_limit(load_model(BLIP, topic="captioning"))
    assert found.maps.shape == (limit - 1, 6, 6)
    assert any(f"first {limit - 1} tokens" in note for note in found.notes)


# ---------------------------------------------------------------------------------------------
# VQA: ViLT's relevance of the chosen answer, BLIP's question encoder


def test_vilt_grounds_its_top_answer_on_its_patch_grid(chelsea):
    found = vqa.ground_answer(chelsea, "What color is the cat?")
    (top, score), *_ = vqa.answer(chelsea, "What color is the cat?")
    assert (found.answer, found.score) == (top, pytest.approx(score, abs=1e-5))
    assert found.map.shape == (4, 6) and (found.map >= 0).all() and found.map.max() > 0
    assert found.image.size == (96, 64)  # chelsea as ViLT sees it: 6×4 patches of 16
    other = vqa.ground_answer(chelsea, "What color is the cat?", answer="dog")
    assert other.answer == "dog" and not np.allclose(other.map, found.map, rtol=1e-3)
    with pytest.raises(LabError, match="no answer 'zebra'"):
        vqa.ground_answer(chelsea, "What color is the cat?", answer="zebra")


def test_vilt_relevance_does_not_depend_on_how_vilt_shuffles_its_patches(chelsea):
    torch.manual_seed(1)
    first = vqa.ground_answer(chelsea, "Is it sleeping?")
    torch.manual_seed(2)
    second = vqa.ground_answer(chelsea, "Is it sleeping?")
    np.testing.assert_allclose(first.map, second.map, rtol=1e-4, atol=1e-9)


def test_blip_vqa_grounds_each_question_word_with_its_cross_attention(chelsea):
    question = "what color is the cat?"
    found = vqa.ground_answer(chelsea, question, model=BLIP_VQA)
    loaded = load_model(BLIP_VQA, topic="vqa")
    model, processor = loaded.model, loaded.processor
    inputs = processor(images=chelsea, text=question, return_tensors="pt")
    with torch.no_grad():
        seen = model.vision_model(pixel_values=inputs.pixel_values).last_hidden_state
        output = model.text_encoder(
            input_ids=inputs.input_ids, encoder_hidden_states=seen, output_attentions=True
        )
    cross = torch.stack(output.cross_attentions)[:, 0].mean(dim=(0, 1))[1:-1, 1:]  # no CLS/SEP
    expected = cross.reshape(-1, 7, 7).numpy()
    assert found.words == tuple(processor.tokenizer.tokenize(question))
    np.testing.assert_allclose(found.word_maps, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(found.map, expected.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert found.answer == vqa.answer(chelsea, question, model=BLIP_VQA)[0][0]


@pytest.mark.parametrize("question", ["", "  \x00 ", None])
def test_vqa_grounding_refuses_an_empty_question(chelsea, question):
    with pytest.raises(LabError, match="Please type a question"):
        vqa.ground_answer(chelsea, question)


# ---------------------------------------------------------------------------------------------
# The endpoints, as a student's script calls them through gradio_client


@pytest.fixture(scope="module")
def grounding_client(launch_tabs):
    with launch_tabs(only=("clip", "captioning", "vqa")) as app:
        yield app.client


def chelsea_file():
    from gradio_client import handle_file

    from vlmlab.images import sample_files

    return handle_file(str(sample_files()["chelsea"]))


def test_clip_relevance_endpoint_answers_with_a_map_per_label(grounding_client):
    gallery, notes = grounding_client.predict(
        chelsea_file(), "cat\ndog, rocket", "a photo of a {}.", B32, 0, api_name="/clip_relevance"
    )
    captions = [item["caption"] for item in gallery]
    assert len(captions) == 3 and {c.split("  (")[0] for c in captions} == {"cat", "dog", "rocket"}
    assert "not an explanation" in notes and "the last layer of 2" in notes
    _, every = grounding_client.predict(
        chelsea_file(), "cat", "a photo of a {}.", B32, 1, api_name="/clip_relevance"
    )
    assert "layers 1–2 of 2" in every
    many, capped = grounding_client.predict(
        chelsea_file(), "\n".join(f"label {i}" for i in range(10_000)), "{}", B32, 0,
        api_name="/clip_relevance",
    )  # fmt: skip
    assert len(many) == MAX_MAPS and "first 12 of your 10,000 labels" in capped


def test_caption_grounding_endpoint_answers_a_map_per_token(grounding_client):
    gallery, notes = grounding_client.predict(
        chelsea_file(), "a cat on a red couch", BLIP, 2, api_name="/caption_grounding"
    )
    assert [item["caption"] for item in gallery] == ["a", "cat", "on", "a", "red", "couch"]
    assert "layer 2 of 2" in notes and "not an explanation" in notes
    with pytest.raises(Exception, match="Please give a caption to ground"):
        grounding_client.predict(chelsea_file(), " \x00 ", BLIP, 0, api_name="/caption_grounding")


@pytest.mark.parametrize("model", [VILT, BLIP_VQA])
def test_vqa_grounding_endpoint_answers_beside_the_bars(grounding_client, model):
    picture, notes = grounding_client.predict(
        chelsea_file(), "What color is it?\nIs it sleeping?", model, api_name="/vqa_grounding"
    )
    assert picture and "not an explanation" in notes
    assert ("Chefer" in notes) == (model == VILT)
    assert ("question encoder" in notes) == (model == BLIP_VQA)


# ---------------------------------------------------------------------------------------------
# The same views in the Jupyter widgets


PNG = b"\x89PNG"


def test_widgets_show_the_grounding_views(chelsea):
    from lab_api import png_pixels

    from vlmlab.render import map_over
    from widgets.captioning import Captioner
    from widgets.clip import SimilarityExplorer, ZeroShotClassifier
    from widgets.vqa import QuestionBox

    zero_shot = ZeroShotClassifier(chelsea, "cat\ndog\nrocket")
    assert zero_shot.maps.value[:4] == PNG and "not an explanation" in (
        zero_shot.maps_notes.value
    )
    zero_shot.start_layer.value = 1
    assert "layers 1–2 of 2" in zero_shot.maps_notes.value
    zero_shot.labels.value = " , "
    assert "at least one label" in zero_shot.notes.value and len(zero_shot.maps.value) == 0

    matrix = SimilarityExplorer(["chelsea", "coffee"], "a cat\na cup of coffee")
    assert matrix.pair.value[:4] == PNG
    matrix.pair_image.value = 0  # chelsea, against the text picked next
    matrix.pair_text.value = "a cup of coffee"
    found = clip.relevance_maps(matrix.images[0], ["a cup of coffee"])
    drawn = map_over(found.image, found.maps[0], side=256)
    assert np.array_equal(png_pixels(matrix.pair.value), png_pixels(drawn))

    captioner = Captioner(chelsea, max_new_tokens=6)
    words = [t for t in captioner.caption.tokens if not t.end]
    assert captioner.maps.value[:4] == PNG and len(captioner.word.options) == len(words)
    assert captioner.large.value[:4] == PNG

    box = QuestionBox(chelsea, "What animal is this?\nIs it sleeping?")
    assert box.looked.value[:4] == PNG and "Chefer" in box.looked_notes.value
    box.model.value = BLIP_VQA
    assert "question encoder" in box.looked_notes.value


def test_a_click_on_the_similarity_matrix_finds_the_cell_under_it(chelsea, coffee):
    """The cell geometry against the picture itself: near each cell's corner the picture has
    that cell's colour (Blues over the cosines' range), and the cell found there is that cell."""
    import matplotlib

    from vlmlab.clip import render as clip_render

    images, names = [chelsea, coffee], ["chelsea", "coffee"]
    matrix = clip.compare(images, "a cat\na cup of coffee\na rocket")
    picture = np.asarray(clip_render.draw_similarity(matrix, images, names))
    left, top, width, height = clip_render.similarity_box(matrix, images, names)
    rows, cols = matrix.cosines.shape
    low, high = matrix.cosines.min(), matrix.cosines.max()
    for row in range(rows):
        for col in range(cols):
            x = left + (col + 0.2) * width / cols  # off the number written in the middle
            y = top + (row + 0.2) * height / rows
            assert clip_render.similarity_cell(matrix, images, names, x, y) == (row, col)
            shade = (matrix.cosines[row, col] - low) / (high - low)
            expected = np.array(matplotlib.colormaps["Blues"](shade)[:3]) * 255
            np.testing.assert_allclose(picture[int(y), int(x)], expected, atol=4)
    assert clip_render.similarity_cell(matrix, images, names, left - 5, top + 5) is None
    assert clip_render.similarity_cell(matrix, images, names, left + 5, top + height + 5) is None
