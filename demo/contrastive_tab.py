"""The Contrastive tab: train a tiny CLIP live and watch its N×N image–text matrix turn diagonal.

Each browser session trains its own model (kept in its `gr.State`); a run streams snapshots,
pauses on Stop (or when the page closes) and resumes on Train.

Stop and Reset do not cancel the run's event: they leave a word in the session (`HALT`) that the
loop reads before each step, and the loop ends with a last view of its own. A cancelled stream is
answered by Gradio with an empty final message that the page can take for a failure (red "Error"
badges on every view of a run that was only paused), and a view written by Reset could be
overwritten by a snapshot still on its way.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from . import links
from .common import LIGHT_EVENT, Lab, guard, view_image
from .figures import keep_figures
from vlmlab import contrastive
from vlmlab.backend import backend
from vlmlab.contrastive.render import (
    REAL_CLIP,
    describe,
    describe_false_negatives,
    describe_zero_shot,
    draw_curves,
    draw_embedding_plane,
    draw_matrix,
    zero_shot_picture,
    zero_shot_ranking,
)

TITLE = "Contrastive"
RESET = "The run was reset: press **Train** to start a new model."
STOPPED_FIRST = "Stopped before it started: press **Train** to start."

# Training runs share their own slots: a few classes' runs at once, the rest wait in the queue
# (Gradio tells them their place), and the other tabs' events are never held up by them.
TRAIN_EVENT = {"concurrency_id": "contrastive", "concurrency_limit": 2}
RUN_SECONDS = 120.0  # each run's time limit, all its resumes together

INTRO = """**Contrastive pretraining, learned live.** CLIP (Radford et al., 2021) learns from
image–caption pairs: in a batch of N, each image must pick its own caption among the N and each
caption its own image, a symmetric cross-entropy over the N×N similarity matrix (the paper's
Figure 3). Here a tiny CLIP, a small CNN and a bag of words, learns it from scratch on captioned
synthetic shapes, in seconds on a CPU. Press **Train** and watch the matrix turn diagonal.
Four colour–shape combinations (a red triangle, a blue cross, a yellow circle, a purple square)
never appear in training: zero-shot, the model has to name them from words it learned apart."""


HALT = "halt"  # the session's key for what ends a run at its next step: "stop", "reset", "closed"


def _fresh() -> dict:
    """A session's training state: the run (model, optimiser, history) and its last snapshot."""
    return {"run": None, "snapshot": None}


def _stop_run(session) -> None:
    """When the session ends (page closed), a running training loop stops at its next step."""
    if isinstance(session, dict):
        session[HALT] = "closed"


def ready(session) -> dict:
    """Train pressed: an earlier Stop or Reset is forgotten before the run is queued, so a Stop
    pressed while the run waits for its slot still stops it."""
    session = session if isinstance(session, dict) else _fresh()
    session.pop(HALT, None)
    return session


def request_stop(session) -> None:
    """Stop pressed: the run pauses after its current step and shows where it paused."""
    if isinstance(session, dict):
        session[HALT] = "stop"


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    session = gr.State(None, delete_callback=_stop_run)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            batch_size = gr.Slider(
                contrastive.MIN_BATCH, contrastive.MAX_BATCH, value=64, step=1, label="batch size N"
            )
            lr = gr.Number(contrastive.DEFAULTS["lr"], label="learning rate")  # the engine checks it
            steps = gr.Slider(
                1, contrastive.MAX_STEPS, value=contrastive.DEFAULTS["steps"], step=1,
                label="steps",
            )  # fmt: skip
            seed = gr.Number(0, label="seed", precision=0)  # the engine checks its range
            learn_temperature = gr.Checkbox(True, label="learnable temperature")
            every = gr.Slider(1, 100, value=contrastive.DEFAULTS["every"], step=1,
                              label="update the views every … steps")  # fmt: skip
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="contrastive-train")
                stop = gr.Button("Stop", variant="stop", elem_id="contrastive-stop")
                reset = gr.Button("Reset", elem_id="contrastive-reset")
        with gr.Column(scale=2):
            status = gr.Markdown("Press **Train** to start.", elem_id="contrastive-status")
            matrix = view_image(
                "The batch's similarity matrix: images × captions", elem_id="contrastive-matrix"
            )
            duplicates = gr.Markdown(elem_id="contrastive-false-negatives")
    with gr.Row():
        curves = view_image("Loss and temperature", elem_id="contrastive-curves")
        plane = view_image("Shared embedding space", elem_id="contrastive-plane")
    with gr.Accordion(
        "Zero-shot on combinations never seen in training", open=True,
        elem_classes=["lab-secondary"],  # closed in the projector view
    ):
        with gr.Row():
            with gr.Column(scale=1):
                picked = gr.Slider(1, contrastive.ZERO_SHOT_IMAGES, value=1, step=1,
                                   label="held-out image")  # fmt: skip
                picture = gr.Image(label="held-out image", type="pil", format="png",
                                   interactive=False, height=170)  # fmt: skip
            with gr.Column(scale=2):
                ranking = gr.Label(label="Its ranking of the prompts", num_top_classes=5,
                                   elem_id="contrastive-ranking")  # fmt: skip
                zero_shot_text = gr.Markdown()
        gr.Markdown(REAL_CLIP)
    numbers = gr.JSON(label="Numbers of the last update", visible=False)

    keep_figures(
        "contrastive",
        [
            (matrix, "similarity matrix", ["batch", "seed"]),
            (curves, "loss and temperature", ["batch", "seed"]),
            (plane, "embedding space", ["batch", "seed"]),
            (picture, "held-out image", ["image"]),
        ],
        {"batch": batch_size, "seed": seed, "image": picked},
    )
    views = [status, matrix, duplicates, curves, plane, picture, ranking, zero_shot_text, numbers]
    linked_runs = gr.State(0)  # bumped by a link: its run starts as if Train were pressed
    links.register(
        lab,
        "contrastive",
        {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "learn_temperature": learn_temperature,
        },
        (start_linked_run, [linked_runs], [linked_runs], LIGHT_EVENT),
    )

    # -- handlers: an engine call and a few lines each ------------------------------------------

    def show(snapshot: contrastive.Snapshot, index: int) -> tuple:
        return (
            describe(snapshot),
            draw_matrix(snapshot),
            describe_false_negatives(snapshot),
            draw_curves(snapshot),
            draw_embedding_plane(snapshot),
            *show_zero_shot(snapshot, index),
            summary(snapshot),
        )

    def show_zero_shot(snapshot: contrastive.Snapshot, index: int) -> tuple:
        ranking = dict(zero_shot_ranking(snapshot, index))
        return zero_shot_picture(snapshot, index), ranking, describe_zero_shot(snapshot, index)

    @guard
    def train_clip(batch_size, lr, steps, seed, learn_temperature, every, picked, session):
        """Train this session's tiny CLIP (or resume it), streaming the views every few steps."""
        settings = contrastive.check_settings(
            steps=steps, batch_size=batch_size, lr=lr, seed=seed, every=every,
            learn_temperature=learn_temperature, max_seconds=RUN_SECONDS,
        )  # fmt: skip
        index = contrastive.check_zero_shot_index(picked) - 1
        if not isinstance(session, dict):
            session = _fresh()  # an API call: its own session, nothing to stop
        if session.get(HALT):  # stopped or reset while it waited for its slot
            yield halted(session)
            return
        run = session["run"] = contrastive.run_for(session.get("run"), settings)
        for snapshot in backend().train_contrastive(
            run, **dataclasses.asdict(settings), should_stop=lambda: HALT in session
        ):
            if HALT in session:  # the word came while this snapshot was drawn
                break
            session["snapshot"] = snapshot
            yield (*show(snapshot, index), session)
        if HALT in session:
            yield halted(session)

    def halted(session: dict) -> tuple:
        """The last view of a run that Stop paused or Reset ended (the views Reset wrote, again:
        this one reaches the page after any snapshot still on its way)."""
        snapshot = session.get("snapshot")
        if session[HALT] == "reset":
            return reset_views()
        if snapshot is None:
            return (STOPPED_FIRST, *[gr.skip()] * (len(views) - 1), session)
        return (describe(snapshot, paused=True), *[gr.skip()] * (len(views) - 1), session)

    @guard
    def pick(picked, session):
        snapshot = session.get("snapshot") if isinstance(session, dict) else None
        if snapshot is None:
            return gr.skip(), gr.skip(), "Train the model first: zero-shot needs a model."
        return show_zero_shot(snapshot, contrastive.check_zero_shot_index(picked) - 1)

    def forget(session):
        if isinstance(session, dict):
            session[HALT] = "reset"  # a loop still running stops at its next step
        return reset_views()

    def reset_views() -> tuple:
        session = {**_fresh(), HALT: "reset"}  # a run still queued does not start; Train clears it
        return (RESET, None, "", None, None, None, None, "", None, session)

    # -- events ---------------------------------------------------------------------------------

    inputs = [batch_size, lr, steps, seed, learn_temperature, every, picked, session]
    private = {"api_visibility": "private", **LIGHT_EVENT}
    train.click(ready, session, session, **private).then(
        train_clip,
        inputs,
        [*views, session],
        api_name="train_clip",
        show_progress="minimal",
        **TRAIN_EVENT,
    )
    linked_runs.change(ready, session, session, **private).then(
        train_clip, inputs, [*views, session], api_visibility="private",
        show_progress="minimal", **TRAIN_EVENT,
    )  # fmt: skip
    stop.click(request_stop, session, None, **private)
    reset.click(forget, session, [*views, session], **private)
    picked.release(
        pick, [picked, session], [picture, ranking, zero_shot_text], api_visibility="private",
        **LIGHT_EVENT,
    )  # fmt: skip


def start_linked_run(view, runs: int, progress=None) -> int:
    """A link opened this tab: its settings are in place, so its run starts (the lecturer's
    link shows the matrix turning diagonal, as pressing Train would)."""
    return int(runs or 0) + 1


def summary(snapshot: contrastive.Snapshot) -> dict:
    """The numbers of one snapshot, for API callers (the views show them to people)."""
    return {
        "step": snapshot.step,
        "steps": snapshot.steps,
        "loss": snapshot.loss,
        "logit_scale": snapshot.logit_scale,
        "matching_accuracy": snapshot.matching_accuracy,
        "text_matching_accuracy": snapshot.text_matching_accuracy,
        "zero_shot_accuracy": snapshot.zero_shot_accuracy,
        "seconds": round(snapshot.seconds, 3),
        "losses": [float(v) for v in snapshot.history_loss],
        "stopped": snapshot.stopped,
    }

