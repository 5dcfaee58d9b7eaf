"""The contrastive playground: the paper's loss, a reproducible run that learns, held-out
combinations kept out of training, pause/resume, divergence, bad input, and the served tab."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from vlmlab import contrastive
from vlmlab.contrastive.render import (
    FALSE_NEGATIVE,
    TRUE_PAIR,
    draw_curves,
    draw_embedding_plane,
    draw_matrix,
    zero_shot_ranking,
)
from vlmlab.errors import LabError

SMALL = dict(batch_size=16, every=2)  # quick runs for the tests that are not about learning


def losses(**settings) -> list[float]:
    *_, last = contrastive.train(**settings)
    return list(last.history_loss)


# ---------------------------------------------------------------------------------------------
# The loss


def _symmetric_cross_entropy(logits: np.ndarray) -> float:
    """The paper's Figure 3, in float64 numpy: CE over the rows and over the columns, averaged."""
    z = logits.astype(np.float64)
    n = len(z)
    rows = z - z.max(1, keepdims=True)
    log_rows = rows - np.log(np.exp(rows).sum(1, keepdims=True))  # each image over the texts
    cols = z - z.max(0, keepdims=True)
    log_cols = cols - np.log(np.exp(cols).sum(0, keepdims=True))  # each text over the images
    loss_i = -log_rows[np.arange(n), np.arange(n)].mean()
    loss_t = -log_cols[np.arange(n), np.arange(n)].mean()
    return (loss_i + loss_t) / 2


def test_the_loss_is_the_papers_symmetric_cross_entropy():
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 5, (12, 12)).astype(np.float32)
    logits[3] += 4  # not symmetric: rows and columns disagree
    ours = float(contrastive.clip_loss(torch.from_numpy(logits)))
    assert ours == pytest.approx(_symmetric_cross_entropy(logits), rel=1e-5)
    # Through the model: logits = normalised image · normalised text · exp(t)
    model = contrastive.TinyCLIP().eval()
    batch = contrastive.draw_pairs(np.random.default_rng(0), 10)
    pixels = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    ids = contrastive.tokenize(batch.captions)
    with torch.no_grad():
        image = model.image_projection(model.image_encoder(pixels)).numpy()
        text = model.text_projection(model.text_encoder(ids)).numpy()
        image /= np.linalg.norm(image, axis=1, keepdims=True)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        expected = image @ text.T * (1 / 0.07)
        ours = float(contrastive.clip_loss(model(pixels, ids)))
    assert ours == pytest.approx(_symmetric_cross_entropy(expected), rel=1e-4)
    assert float(model.scale().detach()) == pytest.approx(1 / 0.07)  # the paper's initial temperature


def test_the_foreground_channel_shows_a_shape_the_same_in_every_colour():
    """The image encoder's fourth channel: one cross drawn in each of the eight colours (same
    place, size, background and noise) gives one outline, and that outline is the cross."""
    count = len(contrastive.COLOURS)
    cross, middle, large = contrastive.SHAPES.index("cross"), 4, 1
    images = np.concatenate(
        [
            contrastive.draw_shapes([c], [cross], [middle], [large], np.random.default_rng(3))
            for c in range(count)
        ]
    )
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    outlines = (contrastive.foreground(pixels)[:, 0] > 0.5).numpy()  # (8, H, W)
    assert (outlines == outlines[0]).mean() >= 0.99  # the colour is gone
    side = contrastive.IMAGE_SIDE
    assert outlines[0, side // 2, side // 2] and not outlines[0, 2, 2]  # centre in, corner out
    assert outlines[0, side // 2, side // 2 + 4] and not outlines[0, side // 2 + 4, side // 2 + 4]
    red = (pixels[:, 0] > 0.5).numpy()  # a colour channel alone loses the green and blue crosses
    assert sum(not (red[i] == red[0]).all() for i in range(count)) >= 2


# ---------------------------------------------------------------------------------------------
# Training


def test_a_seed_gives_the_same_losses_and_another_seed_others():
    first = losses(steps=6, seed=3, **SMALL)
    assert len(first) == 6 and all(math.isfinite(v) for v in first)
    assert losses(steps=6, seed=3, **SMALL) == first
    assert losses(steps=6, seed=4, **SMALL) != first


def test_pausing_and_resuming_is_the_same_run():
    straight = losses(steps=6, seed=5, **SMALL)
    run = contrastive.new_run(steps=3, seed=5, **SMALL)
    *_, paused = contrastive.train(steps=3, seed=5, run=run, **SMALL)
    assert paused.step == 3
    *_, resumed = contrastive.train(steps=6, seed=5, run=run, **SMALL)
    assert resumed.step == 6 and list(resumed.history_loss) == straight
    with pytest.raises(LabError, match="Reset"):  # a paused run keeps its batch size
        next(contrastive.train(steps=9, seed=5, run=run, batch_size=8, every=2))


def test_train_goes_on_with_the_same_model_and_makes_a_new_one_for_new_model_settings():
    import dataclasses

    settings = contrastive.check_settings(steps=2, lr=0.003, seed=0, **SMALL)
    run = contrastive.run_for(None, settings)
    assert contrastive.run_for(run, dataclasses.replace(settings, steps=9, lr=0.01)) is run
    for change in ({"seed": 1}, {"batch_size": 8}, {"learn_temperature": False}):
        fresh = contrastive.run_for(run, dataclasses.replace(settings, **change))
        assert fresh is not run and fresh.step == 0, change


def test_snapshots_come_every_few_steps_with_what_the_views_need():
    snapshots = list(contrastive.train(steps=5, seed=1, **SMALL))
    assert [s.step for s in snapshots] == [0, 2, 4, 5]
    last = snapshots[-1]
    assert last.stopped.startswith("Finished")
    assert last.similarity.shape == (16, 16) and np.abs(last.similarity).max() <= 1 + 1e-5
    assert last.images.shape == (16, 32, 32, 3) and len(last.captions) == 16
    assert last.logits == pytest.approx(last.similarity * last.logit_scale)
    assert last.zero_shot_probabilities.shape == (64, 32)
    assert np.allclose(last.zero_shot_probabilities.sum(1), 1, atol=1e-4)
    assert len(last.history_steps) == 5 and last.seconds > 0
    assert last.image_points.shape == last.text_points.shape == (64, 2)


def test_held_out_combinations_never_appear_in_training():
    held = {(c, s) for c, s in contrastive.HELD_OUT}
    colours = list(contrastive.COLOURS)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        batch = contrastive.draw_pairs(rng, 64)
        pairs = {(colours[c], contrastive.SHAPES[s]) for c, s in zip(batch.colours, batch.shapes)}
        seen |= pairs
        assert not pairs & held
    assert len(seen) == 32 - len(held)  # every other combination does appear
    # The batches a real run trains on: every caption names a trained combination.
    run = contrastive.new_run(steps=4, seed=2, **SMALL)
    captions = []
    for _ in range(4):
        run.train_step()
        captions += run._last[0].captions
    for colour, shape in held:
        assert not any(f"{colour} {shape}" in caption for caption in captions)
    zero_shot = run.snapshot()
    truth = [zero_shot.zero_shot_labels[t] for t in zero_shot.zero_shot_truth]
    assert {label.removeprefix("a photo of a ") for label in truth} == {
        f"{c} {s}" for c, s in held
    }


def test_with_the_defaults_the_matrix_turns_diagonal_and_zero_shot_works():
    """The property the tab is for: 300 steps at batch 64 (seed 0) match 64 distinct captions
    and name combinations never seen in training."""
    *_, last = contrastive.train(steps=300, seed=0, every=300, max_seconds=None)
    assert last.step == 300, last.stopped
    assert last.matching_accuracy >= 0.95
    assert last.zero_shot_accuracy >= 0.90
    assert last.loss < 0.5 * math.log(64)
    assert last.logit_scale > 1 / 0.07  # the learned temperature sharpened


def test_a_huge_learning_rate_stops_the_run_with_a_sentence():
    *_, last = contrastive.train(steps=200, lr=10, seed=0, **SMALL)
    assert last.step < 200
    assert "diverged" in last.stopped and "learning rate" in last.stopped


def test_the_time_limit_stops_a_run():
    *_, last = contrastive.train(steps=100, seed=0, max_seconds=1e-6, **SMALL)
    assert last.step == 1 and "time limit" in last.stopped


def test_a_fixed_temperature_stays_put():
    *_, last = contrastive.train(steps=4, seed=0, learn_temperature=False, **SMALL)
    assert np.allclose(last.history_scale, 1 / 0.07)


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("batch_size", 1, "batch size"),
        ("batch_size", 10_000, "batch size"),
        ("batch_size", 2.5, "whole number"),
        ("lr", float("nan"), "learning rate"),
        ("lr", float("inf"), "learning rate"),
        ("lr", -0.1, "learning rate"),
        ("lr", "fast", "learning rate"),
        ("steps", 0, "steps"),
        ("steps", contrastive.MAX_STEPS + 1, "steps"),
        ("seed", -1, "seed"),
        ("seed", "abc", "seed"),
        ("every", float("-inf"), "update interval"),
        ("learn_temperature", "yes", "temperature"),
        ("max_seconds", 10**6, "time limit"),
    ],
)
def test_bad_settings_get_a_sentence(name, value, words):
    settings = dict(contrastive.DEFAULTS, max_seconds=10)
    settings[name] = value
    with pytest.raises(LabError, match=words) as caught:
        next(contrastive.train(**settings))
    message = str(caught.value)
    assert message.endswith(".") and "Traceback" not in message and len(message) < 200


def test_unknown_words_get_a_sentence():
    with pytest.raises(LabError, match="never seen 'giraffe'"):
        contrastive.tokenize(["a giraffe"])


# ---------------------------------------------------------------------------------------------
# Drawing


def test_the_matrix_marks_true_pairs_and_false_negatives():
    run = contrastive.new_run(steps=1, seed=0, batch_size=64)
    snapshot = next(contrastive.train(steps=1, seed=0, batch_size=64, run=run))
    assert snapshot.duplicate_pairs  # the short template repeats in a batch of 64
    for i, j in snapshot.duplicate_pairs:
        assert snapshot.captions[i] == snapshot.captions[j] and i != j
    pixels = np.asarray(draw_matrix(snapshot))
    for colour in (TRUE_PAIR, FALSE_NEGATIVE):
        assert (pixels == colour).all(-1).sum() > 50, colour
    unique = next(contrastive.train(steps=1, seed=0, batch_size=4, every=1))
    if not unique.duplicate_pairs:
        assert not (np.asarray(draw_matrix(unique)) == FALSE_NEGATIVE).all(-1).any()
    for picture in (draw_curves(snapshot), draw_embedding_plane(snapshot)):
        assert isinstance(picture, Image.Image) and min(picture.size) > 100
    ranking = zero_shot_ranking(snapshot, 0)
    assert len(ranking) == 5 and ranking[0][1] >= ranking[-1][1]


def test_the_playground_widget_pauses_on_stop_and_says_so_then_resumes_on_train():
    from widgets.contrastive import ContrastivePlayground

    playground = ContrastivePlayground(steps=contrastive.MAX_STEPS, batch_size=8, every=1)
    shown, show = threading.Event(), playground.show

    def counting(snapshot):
        show(snapshot)
        if snapshot.step >= 2:
            shown.set()

    playground.show = counting
    playground.start()
    assert shown.wait(timeout=600)
    playground.stop()  # waits for the training thread
    paused = playground.snapshot
    assert not playground._thread.is_alive() and paused.step < contrastive.MAX_STEPS
    assert "Paused: press Train to go on" in playground.status.value
    playground.steps.value = paused.step + 2
    last = playground.train()  # resumes the same model
    assert last.step == paused.step + 2 and last.history_loss[: paused.step] == pytest.approx(
        paused.history_loss
    )
    assert "Finished" in playground.status.value and "Paused" not in playground.status.value


# ---------------------------------------------------------------------------------------------
# The served tab


@pytest.fixture(scope="module")
def tab(launch_tabs):
    with launch_tabs(("contrastive",)) as app:
        yield app


def _api_losses(client, seed: int, results: dict) -> None:
    job = client.submit(8, 0.003, 4, seed, True, 2, 1, api_name="/train_clip")
    results[seed] = [update[-1] for update in job]  # the numbers of each update


def test_two_sessions_each_train_their_own_model(tab):
    from gradio_client import Client

    clients = {seed: Client(tab.url, verbose=False) for seed in (11, 12)}
    results: dict = {}
    threads = [
        threading.Thread(target=_api_losses, args=(client, seed, results))
        for seed, client in clients.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for seed in clients:
        numbers = results[seed][-1]
        expected = losses(steps=4, seed=seed, batch_size=8, every=2)
        assert numbers["step"] == 4 and numbers["losses"] == pytest.approx(expected, rel=1e-5)
        assert [r["step"] for r in results[seed]] == [0, 2, 4]
    # The same session trains on: its second call resumes its own model up to 6 steps.
    again = list(clients[11].submit(8, 0.003, 6, 11, True, 2, 1, api_name="/train_clip"))
    assert again[-1][-1]["losses"][:4] == pytest.approx(results[11][-1]["losses"], rel=1e-5)
    assert again[-1][-1]["step"] == 6


@pytest.mark.parametrize(
    "values, words",
    [
        (dict(batch_size=1000), "256"),
        (dict(lr=50.0), "learning rate"),
        (dict(lr=-1.0), "learning rate"),
        (dict(lr="abc"), "learning rate"),
        (dict(seed=10**9), "seed"),
        (dict(seed=-5), "seed"),
        (dict(steps=0), "1"),
        (dict(picked=0), "1"),
    ],
)
def test_bad_values_through_the_api_get_a_sentence(tab, values, words):
    from gradio_client.exceptions import AppError
    from lab_api import assert_alive, assert_clear

    settings = dict(batch_size=8, lr=0.003, steps=2, seed=0, learn_temperature=True, every=1,
                    picked=1)  # fmt: skip
    settings.update(values)
    with pytest.raises(AppError) as caught:
        tab.client.predict(**settings, api_name="/train_clip")
    assert words in assert_clear(caught.value.message)
    assert_alive(tab.url)
