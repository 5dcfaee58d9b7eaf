"""Captioning: BLIP's caption equals `model.generate`, token probabilities match its scores, the
caption streams word by word, bad settings get a clear sentence, and both faces show it."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmlab import captioning
from vlmlab.captioning import Caption, Token, caption, caption_stream
from vlmlab.captioning.render import beam_rows, caption_html, caption_notes, word_maps, word_picture
from vlmlab.errors import LabError
from vlmlab.models import load_model

MODEL = captioning.DEFAULT_MODEL
LARGE = "Salesforce/blip-image-captioning-large"


def loaded(name: str = MODEL):
    return load_model(name, topic="captioning")


def bare_generate(image, prompt=None, name=MODEL, **kwargs):
    """What a user of transformers would write: the processor, then BLIP's own generate."""
    model = loaded(name)
    inputs = model.processor(images=image, text=prompt, return_tensors="pt")
    with torch.inference_mode():
        return model.model.generate(**model.to_device(inputs), **kwargs)


def decode(ids, name=MODEL) -> str:
    return loaded(name).processor.tokenizer.decode(ids, skip_special_tokens=True)


def teacher_forced(image, sequence: torch.Tensor, name=MODEL) -> torch.Tensor:
    """The decoder's logits for every position of a finished sequence, in one forward pass."""
    model = loaded(name)
    pixels = model.processor(images=image, return_tensors="pt").pixel_values
    with torch.inference_mode():
        embeds = model.model.vision_model(pixel_values=model.to_device(pixels))[0]
        ids = sequence[None, :-1].to(model.device)
        return model.model.text_decoder(input_ids=ids, encoder_hidden_states=embeds).logits[0]


# ---------------------------------------------------------------------------------------------
# Equal to generate


@pytest.mark.parametrize("name", [MODEL, LARGE])
@pytest.mark.parametrize("prompt", [None, "a picture of"])
def test_greedy_caption_equals_generate(chelsea, name, prompt):
    result = caption(chelsea, model=name, prompt=prompt, max_new_tokens=20)
    expected = bare_generate(chelsea, prompt, name, max_new_tokens=20)[0]
    assert result.text == decode(expected, name)
    start = expected.shape[0] - len(result.tokens)
    assert [t.token_id for t in result.tokens] == expected[start:].tolist()
    if prompt:
        assert result.prefix == prompt and result.text.startswith(prompt)
    assert result.beams == ()


def test_beam_search_equals_generate_with_every_beam_and_score(coffee):
    result = caption(coffee, num_beams=3, max_new_tokens=15)
    expected = bare_generate(
        coffee,
        num_beams=3,
        num_return_sequences=3,
        max_new_tokens=15,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert result.text == decode(expected.sequences[0])
    assert [text for text, _ in result.beams] == [decode(row) for row in expected.sequences]
    np.testing.assert_allclose([s for _, s in result.beams], expected.sequences_scores, rtol=1e-5)
    assert [row[0] for row in beam_rows(result)] == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# Token probabilities


def test_greedy_probabilities_match_generate_scores_and_a_teacher_forced_pass(chelsea):
    result = caption(chelsea, prompt="a photo of", max_new_tokens=12)
    probabilities = np.array([t.probability for t in result.tokens])
    assert np.all((probabilities > 0) & (probabilities <= 1))
    out = bare_generate(
        chelsea, "a photo of", max_new_tokens=12, output_scores=True, return_dict_in_generate=True
    )
    decoder = loaded().model.text_decoder
    steps = decoder.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    np.testing.assert_allclose(probabilities, steps[0].exp().numpy(), rtol=1e-5)
    # The same numbers from one forward pass over the finished caption (no generate at all).
    sequence = out.sequences[0]
    logits = teacher_forced(chelsea, sequence)  # (length - 1, vocab)
    start = sequence.shape[0] - len(result.tokens)
    rows = torch.softmax(logits[start - 1 :], dim=-1)
    chosen = rows[torch.arange(len(result.tokens)), sequence[start:]]
    np.testing.assert_allclose(probabilities, chosen.numpy(), rtol=1e-4)
    assert math.isclose(result.probability, float(np.prod(probabilities)), rel_tol=1e-6)


def test_beam_probabilities_give_generates_sequence_score(chelsea):
    result = caption(chelsea, num_beams=4, max_new_tokens=10)
    logs = [math.log(t.probability) for t in result.tokens]
    assert all(0 < t.probability <= 1 for t in result.tokens)
    # transformers' beam score: summed log-probabilities over generated length (penalty 1.0).
    assert math.isclose(sum(logs) / len(logs), result.beams[0][1], rel_tol=1e-5)


def test_sampling_probabilities_are_those_of_the_reshaped_distribution(chelsea):
    torch.manual_seed(0)
    result = caption(chelsea, do_sample=True, temperature=0.5, max_new_tokens=8)
    assert result.sampled and len(result.tokens) >= 1
    ids = [t.token_id for t in result.tokens]
    prompt = loaded().model.config.text_config.bos_token_id
    logits = teacher_forced(chelsea, torch.tensor([prompt, *ids]))
    chosen = torch.softmax(logits / 0.5, dim=-1)[torch.arange(len(ids)), ids]
    np.testing.assert_allclose([t.probability for t in result.tokens], chosen.numpy(), rtol=1e-4)


def test_a_tiny_nucleus_leaves_only_the_greedy_token_with_probability_one(chelsea):
    sampled = caption(chelsea, do_sample=True, top_p=1e-6, max_new_tokens=10)
    greedy = caption(chelsea, max_new_tokens=10)
    assert sampled.text == greedy.text
    assert all(t.probability == pytest.approx(1.0) for t in sampled.tokens)


# ---------------------------------------------------------------------------------------------
# Streaming


def test_stream_grows_word_by_word_and_ends_with_the_caption(chelsea):
    captioning.clear_caches()
    parts = list(caption_stream(chelsea, prompt="a picture of", max_new_tokens=15))
    *partials, final = parts
    assert final.done and not any(p.done for p in partials)
    assert len(partials) >= 2
    texts = [p.text for p in partials]
    assert all(len(a) < len(b) for a, b in itertools.pairwise(texts))
    for partial in partials:  # whole words only: the final caption goes on with a space
        assert final.text.startswith(partial.text)
        assert final.text[len(partial.text)] == " "
        for live, done in zip(partial.tokens, final.tokens, strict=False):
            assert (live.token_id, live.text) == (done.token_id, done.text)
            assert live.probability == pytest.approx(done.probability, rel=1e-5)
    again = caption(chelsea, prompt="a picture of", max_new_tokens=15)
    assert (again.text, again.tokens) == (final.text, final.tokens)


def test_beam_search_stream_gives_the_final_caption_only(chelsea):
    parts = list(caption_stream(chelsea, num_beams=2, max_new_tokens=6))
    assert len(parts) == 1 and parts[0].done and len(parts[0].beams) == 2


def test_a_reader_that_leaves_early_stops_the_stream(chelsea):
    captioning.clear_caches()
    stream = caption_stream(chelsea, max_new_tokens=40)
    first = next(stream)
    assert not first.done
    stream.close()  # must not hang, and the next call still works
    assert caption(chelsea, max_new_tokens=5).done


def test_the_photo_is_encoded_once_for_every_decoding(chelsea):
    captioning.clear_caches()
    caption(chelsea, max_new_tokens=5)
    caption(chelsea, num_beams=3, max_new_tokens=5)
    caption(chelsea, do_sample=True, max_new_tokens=5)
    assert len(captioning._image_embeds) == 1


# ---------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(num_beams=0), "number of beams must be a whole number from 1 to 8"),
        (dict(num_beams=9), "number of beams must be a whole number from 1 to 8"),
        (dict(num_beams=2.5), "number of beams must be a whole number"),
        (dict(num_beams=True), "number of beams must be a whole number"),
        (dict(do_sample="yes"), "Sampling must be switched on"),
        (dict(do_sample=True, num_beams=3), "beam search or sampling, not both"),
        (dict(temperature=0), "temperature must be above 0 and at most 2"),
        (dict(temperature=2.5), "temperature must be above 0 and at most 2"),
        (dict(temperature=float("nan")), "temperature must be a number"),
        (dict(top_p=0), "Top-p must be above 0 and at most 1"),
        (dict(top_p=1.5), "Top-p must be above 0 and at most 1"),
        (dict(max_new_tokens=0), "maximum caption length must be a whole number from 1 to 60"),
        (dict(max_new_tokens=61), "maximum caption length must be a whole number from 1 to 60"),
        (dict(prompt=42), "The prefix must be text"),
        (dict(model="dandelin/vilt-b32-finetuned-vqa"), "Unknown model"),
    ],
)
def test_bad_settings_get_a_clear_sentence(chelsea, settings, message):
    with pytest.raises(LabError, match=message):
        caption(chelsea, **settings)
    with pytest.raises(LabError, match=message):
        list(caption_stream(chelsea, **settings))


def test_an_empty_prefix_is_no_prefix(chelsea):
    assert (
        caption(chelsea, prompt=" \n\t ", max_new_tokens=8).text
        == caption(chelsea, max_new_tokens=8).text
    )


def test_a_prefix_longer_than_the_text_limit_is_cut_with_a_note(chelsea):
    model = loaded()
    limit = captioning.text_limit(model)  # 64 for the tiny checkpoint (512 for the real one)
    result = caption(chelsea, prompt="a picture of " * limit, max_new_tokens=20)
    room = limit - 1 - 20  # [DEC] and the caption's 20 tokens
    assert len(model.processor.tokenizer(result.prefix, add_special_tokens=False).input_ids) == room
    assert result.text.startswith(result.prefix)
    assert any(
        "only “a picture of" in note and f"reads {limit} tokens" in note for note in result.notes
    )


def test_settings_for_maps_a_decoding_name_to_caption_keywords():
    assert captioning.settings_for("Beam  Search", num_beams=4)["num_beams"] == 4
    sampling = captioning.settings_for("sampling", num_beams=4, temperature=0.7)
    assert sampling["do_sample"] and sampling["num_beams"] == 1 and sampling["temperature"] == 0.7
    with pytest.raises(LabError, match="greedy, beam search, sampling"):
        captioning.settings_for("typical")


# ---------------------------------------------------------------------------------------------
# Drawing


def test_caption_html_colours_tokens_escapes_text_and_lists_beams():
    tokens = (Token(" <i>cat</i>", 0.5, 7), Token("s", 0.97, 8), Token("", 0.8, 3, end=True))
    shown = Caption(
        "<script>x</script> cats", tokens, (("cats", -0.2),), prefix="<script>x</script>"
    )
    page = caption_html(shown)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;i&gt;cat" in page
    assert "50%" in page and "97%" in page and "⏎ end" in page and "<table" in page
    assert "<table" not in caption_html(shown, show_beams=False)
    assert len(set(re.findall(r"background:(rgb\([^)]*\))", page))) == 3  # one per probability
    notes = caption_notes(shown)
    assert "0.388" in notes and "Beam search kept the 1 best" in notes


# ---------------------------------------------------------------------------------------------
# The widget and the Gradio tab


def test_captioner_widget_recaptions_when_a_control_changes(chelsea):
    from widgets.captioning import Captioner

    widget = Captioner(chelsea, max_new_tokens=6)
    first = widget.view.value
    assert "vlmlab-caption" in first and widget.caption.done
    widget.decoding.value = "beam search"
    assert "<table" in widget.view.value and len(widget.caption.beams) == widget.beams.value
    widget.prefix.value = "a picture of"
    assert widget.caption.text.startswith("a picture of")
    assert "prefix" in widget.view.value


@pytest.fixture(scope="module")
def tab_client(launch_tabs):
    """Just the Captioning tab, launched on loopback, and a gradio_client for it."""
    with launch_tabs(only=('captioning',)) as app:
        yield app.client


def test_caption_endpoint_streams_then_returns_every_number(tab_client, chelsea):
    from gradio_client import handle_file

    from vlmlab.images import sample_files

    captioning.clear_caches()
    photo = handle_file(str(sample_files()["chelsea"]))
    job = tab_client.submit(
        photo, MODEL, "greedy", 3, 1.0, 0.9, 15, "a picture of", api_name="/caption"
    )
    updates = [update[0] for update in job]
    text, beams, view, notes = job.result()
    expected = caption(chelsea, prompt="a picture of", max_new_tokens=15)
    assert text == expected.text
    growing = [u for u in updates if u and u != text]
    assert len(growing) >= 2 and all(text.startswith(u) for u in growing)
    assert "vlmlab-caption" in view and "token probabilities" in notes
    _, beams, _, _ = tab_client.predict(
        photo, MODEL, "beam search", 3, 1.0, 0.9, 8, "", api_name="/caption"
    )
    assert len(beams["data"]) == 3


def test_caption_endpoint_explains_a_bad_setting(tab_client):
    from gradio_client import handle_file

    from vlmlab.images import sample_files

    photo = handle_file(str(sample_files()["coffee"]))
    with pytest.raises(Exception, match="whole number from 1 to 60"):
        tab_client.predict(photo, MODEL, "greedy", 3, 1.0, 0.9, 2.5, "", api_name="/caption")


def test_the_tab_streams_the_caption_views_by_name_and_shows_the_decodings_settings():
    from demo import captioning_tab
    from demo.common import open_photo
    from vlmlab.images import sample_files

    photo = str(sample_files()["chelsea"])
    updates = list(captioning_tab.caption(photo, MODEL, "greedy", 3, 1.0, 0.9, 6, "", None))
    assert all(set(u) == set(captioning_tab.CAPTION_VIEWS) for u in updates)
    assert "BLIP is looking at the photo" in updates[0]["view"]
    assert updates[-1]["text"] == caption(sample_files()["chelsea"], max_new_tokens=6).text
    shown = list(captioning_tab.caption_with_maps(photo, MODEL, "greedy", 3, 1.0, 0.9, 6, "", None))
    assert len(shown[-1]["maps"]) >= 1 and shown[-1]["maps_notes"]
    # Each word's map is written once, then sent with every later word as that same file: each
    # part's strip starts with the one before it, and the files show the caption's maps.
    strips = [update["maps"] for update in shown[1:]]
    for before, after in zip(strips, strips[1:]):
        assert after[: len(before)] == before
    image = open_photo(photo).image
    final = list(caption_stream(image, max_new_tokens=6, maps=True))[-1]
    view = captioning.model_view(load_model(MODEL), image)
    assert [word for _, word in strips[-1]] == [word for _, word in word_maps(final)]
    for (path, _), (heat, _) in zip(strips[-1], word_maps(final), strict=True):
        assert Path(path).suffix == ".png"  # lossless: the pixels drawn
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(word_picture(view, heat)))
    beams = captioning_tab.show_controls("beam search")
    assert beams["beams"]["visible"] and beams["table"]["visible"]
    assert not beams["temperature"]["visible"] and not beams["top_p"]["visible"]
    assert captioning_tab.show_controls("sampling")["top_p"]["visible"]
