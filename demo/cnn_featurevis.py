"""The CNN tab's "what does this channel want?" section (feature visualisation,
vlmlab.cnn.featurevis): the image a channel wants or hates, forming step by step, beside the
channel over the photo and where it fires hardest in the sample photos."""

from __future__ import annotations

import math
import os

import gradio as gr

from .cache_writes import as_file
from .common import MODEL_EVENT, Lab, guard, log, open_photo, progress_callback
from vlmlab import cnn
from vlmlab.cnn import featurevis as cnn_visualize
from vlmlab.cnn import featurevis_render as cnn_visualize_render
from vlmlab.cnn import render as cnn_render
from vlmlab.models import load_model


DIRECTION_CHOICES = [("what it wants (maximise)", "want"), ("what it hates (minimise)", "hate")]
MAX_STEPS = 512  # per request, and …
DEFAULT_TIME_LIMIT = 120.0
TIME_LIMIT_ENV = "VLMLAB_VISUALIZE_SECONDS"


def time_limit_from_env(default: float = DEFAULT_TIME_LIMIT) -> float:
    """Seconds of optimising per request: VLMLAB_VISUALIZE_SECONDS when it is a positive number,
    else `default` (a setting that is not one is logged and ignored: the tab still starts)."""
    text = os.environ.get(TIME_LIMIT_ENV, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        log.warning(
            "%s must be a positive number of seconds, not %r; using %g.",
            TIME_LIMIT_ENV, text[:40], default,
        )  # fmt: skip
        return default
    return seconds


TIME_LIMIT = time_limit_from_env()  # … seconds of optimising

VISUALIZE_NOTE = """#### What does this channel want?
Start from noise and change the image, step by step, until the chosen channel fires as hard as
it can (Olah, Mordvintsev & Schubert, *Feature Visualization*, Distill 2017). Beside it: the
channel over your photo, and the places in the sample photos where it fires hardest. A finished
picture is kept, so the next student asking for the same channel gets it at once."""


KEYS = ["model", "layer", "channel", "direction", "steps"]  # the settings in its figure's name


def build(lab: Lab, model, layer, channel) -> dict:
    """The "what does this channel want?" section, under the feature maps (same network, layer
    and channel); returns its pictures and settings for "Figures to keep". Public endpoint:
    visualize_channel (streaming)."""
    gr.Markdown(VISUALIZE_NOTE)
    with gr.Row():
        direction = gr.Radio(DIRECTION_CHOICES, value="want", label="Direction", scale=2)
        steps = gr.Slider(16, MAX_STEPS, value=256, step=16, label="Steps", scale=2)
        start = gr.Button("What does this channel want?", variant="primary", scale=1)
    with gr.Row():
        wanted = gr.Image(label="The image it wants, forming", format="png", interactive=False)
        on_photo = gr.Image(label="The channel over your photo", interactive=False)
        examples = gr.Gallery(
            label="Where it fires hardest in the photos",
            columns=4,
            height="auto",
            preview=False,
            interactive=False,
        )
    wanted_caption = gr.Markdown(elem_id="cnn-visualize-caption")
    start.click(
        guard(visualize_channel),
        [lab.photo, model, layer, channel, direction, steps],
        [wanted, on_photo, examples, wanted_caption],
        api_name="visualize_channel",
        **MODEL_EVENT,
    )
    return {"wanted": wanted, "on_photo": on_photo, "examples": examples,
            "direction": direction, "steps": steps}


def visualize_channel(photo, model, layer, channel, direction, steps, progress=gr.Progress()):
    """Stream the image a channel wants (or hates), with the channel over the photo and the
    dataset examples beside it. Bounded: MAX_STEPS steps, TIME_LIMIT seconds."""
    steps = cnn_visualize.whole_number(steps, "steps", 1, MAX_STEPS)
    load_model(model, topic=cnn.TOPIC, progress=progress_callback(progress))
    image = open_photo(photo).image
    direction = direction or "want"
    view = cnn.feature_maps(image, model, layer or None, "activation", channel)
    examples = cnn.dataset_examples(
        model, view.layer.name, view.channel, image, direction=direction
    )
    tiles = cnn_visualize_render.example_tiles(examples)
    frames = cnn.visualize_steps(
        model, view.layer.name, view.channel, steps=steps, direction=direction,
        time_limit=TIME_LIMIT, progress=progress_callback(progress),
    )  # fmt: skip
    # Sent again with every frame: written once, then handed over as the files they are.
    overlay = as_file(cnn_render.draw_features(view).overlay)
    tiles = [(as_file(tile), caption) for tile, caption in tiles]
    yield None, overlay, tiles, f"{view.layer.name} channel {view.channel}: starting…"
    for frame in frames:
        yield frame.image, overlay, tiles, frame.describe()
