"""The CLIP tab: zero-shot classification from label text, the image–text similarity matrix of
contrastive pretraining, and a robustness probe of CLIP against an ImageNet CNN."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from . import links, own_model
from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    guard,
    open_photo,
    progress_callback,
    view_image,
)
from .batching import batched
from .figures import keep_figures
from vlmlab import clip
from vlmlab.clip import probe as clip_probe
from vlmlab.clip import render as clip_render
from vlmlab.backend import backend
from vlmlab.cnn import default_choice
from vlmlab.errors import LabError
from vlmlab.images import FILE_TYPES, load_image, sample_files
from vlmlab.models import choices, get_spec, is_local, load_model
from vlmlab.render import map_over

TITLE = "CLIP"

YOUR_PHOTO = "your photo"
# The lab's photo first (Chelsea until another is picked), so the matrix starts on it.
DEFAULT_SAMPLES = [YOUR_PHOTO, "astronaut", "coffee", "rocket"]
DEFAULT_PHOTO_CAPTION = clip.SAMPLE_CAPTIONS["chelsea"]
TABLE_HEADERS = ["label", "probability", "cosine", "logit = scale × cosine"]

INTRO = """### CLIP: images and texts in one embedding space
CLIP was trained on 400 million (image, text) pairs to predict which caption belongs to which
image. Here you can turn label text into a classifier (**zero-shot**) and see **where in the
photo** each label is found, look at the **similarity matrix** it was trained on, and **probe**
how it holds up against an ImageNet CNN when the photo is blurred, sketched or run through your
own kernel."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    model = own_model.model_dropdown(
        "clip",
        [(f"{get_spec(name).title} ({name})", name) for name in choices("clip")],
        value=clip.DEFAULT_MODEL,
        label="CLIP model",
        elem_id="clip-model",
    )
    own_model.build(lab, "clip", model)
    _build_zero_shot(lab, model)
    _build_similarity(lab, model)
    from . import clip_pair_tab  # imports this module's helpers

    clip_pair_tab.build(lab)
    _build_probe(lab, model)
    keep_figures("clip", lab.shared.pop("clip_figures", []), {"model": model})
    _register_link(lab, model)


def _register_link(lab: Lab, model: gr.Dropdown) -> None:
    """Links: model, labels, templates, and the side-by-side pair's second model; a link
    classifies the photo with the labels, and runs the pair when it names a second model."""
    labels, templates, outputs = lab.shared["clip_zero_shot"]
    box, left, right, pair_outputs = lab.shared["clip_pair"]

    links.register(
        lab,
        "clip",
        {"model": (model, left), "labels": labels, "templates": templates, "other_model": right},
        (linked_zero_shot, [lab.photo, labels, templates, model], outputs, MODEL_EVENT),
        (linked_pair, [lab.photo, labels, left, right], [box, *pair_outputs], MODEL_EVENT),
    )


@guard
def linked_zero_shot(view, photo, labels, templates, model, progress=None):
    """A link's labels and templates, classified as the button would."""
    return classify_batch.one(photo, labels, templates, model)


@guard
def linked_pair(view, photo, labels, model, other_model, progress=None):
    """The side-by-side pair a link names (its second model), when that model is here."""
    from . import clip_pair_tab  # imports this module's helpers

    if links.settings_of(view, "clip").other_model is None:
        return (gr.skip(),) * 5
    if not is_local(other_model):
        note = f"{other_model} is not on this machine, so the side by side waits (`make models`)."
        return gr.Accordion(open=True), gr.skip(), gr.skip(), gr.skip(), note
    answer = clip_pair_tab.zero_shot_pair(photo, labels, model, other_model, progress=progress)
    return gr.Accordion(open=True), *answer


# ---------------------------------------------------------------------------------------------
# Zero-shot: a classifier from label text


def _build_zero_shot(lab: Lab, model: gr.Dropdown) -> None:
    gr.Markdown("#### Zero-shot: a classifier built from label text")
    with gr.Row():
        with gr.Column(scale=2):
            labels = gr.Textbox(
                clip.DEFAULT_LABELS,
                lines=6,
                max_lines=16,
                label=f"Labels (one per line or comma-separated, up to {clip.MAX_LABELS})",
                elem_id="clip-labels",
            )
            template_set = gr.Dropdown(
                list(clip.TEMPLATE_SETS),
                value=next(iter(clip.TEMPLATE_SETS)),
                label="Prompt templates",
                elem_id="clip-template-set",
            )
            templates = gr.Textbox(
                clip.DEFAULT_TEMPLATE,
                lines=2,
                max_lines=12,
                label="Templates ({} is where each label goes; several are averaged: "
                "CLIP's prompt ensembling)",
                elem_id="clip-templates",
            )
            run = gr.Button("Classify", variant="primary", elem_id="clip-classify")
        with gr.Column(scale=3):
            bars = gr.Label(num_top_classes=10, label="Probabilities", elem_id="clip-bars")
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                datatype=["str", "number", "number", "number"],
                interactive=False,
                label="Raw scores: cosine similarity of image and label embeddings",
                elem_id="clip-scores",
            )
            notes = gr.Markdown(elem_id="clip-notes")
    with gr.Row():
        with gr.Column(scale=4):
            maps = gr.Gallery(
                label="Where in the photo each label is found (most likely first; click one)",
                columns=6,
                height="auto",
                object_fit="contain",
                interactive=False,
                elem_id="clip-relevance",
            )
        with gr.Column(scale=1, min_width=200):
            start_layer = gr.Number(
                0,
                precision=0,
                minimum=0,
                label="Follow attention from layer (0: the last only, as Chefer et al.'s "
                "notebook; 1: every layer)",
                elem_id="clip-start-layer",
            )
            maps_notes = gr.Markdown(elem_id="clip-relevance-notes")
    lab.shared.setdefault("clip_figures", []).append((maps, "where each label is", ["model"]))

    lab.shared["clip_zero_shot"] = (labels, templates, [bars, table, notes])
    template_set.change(
        templates_of,
        template_set,
        templates,
        api_visibility="private",
        **LIGHT_EVENT,
    )
    # One batched event for the button and Enter: a lecture hall's requests share a forward.
    gr.on(
        [run.click, labels.submit],
        classify_batch,
        [lab.photo, labels, templates, model],
        [bars, table, notes],
        api_name="zero_shot",
        batch=True,
        max_batch_size=8,
        **MODEL_EVENT,
    ).success(
        relevance,
        [lab.photo, labels, templates, model, start_layer],
        [maps, maps_notes],
        api_name="clip_relevance",
        **MODEL_EVENT,
    )


@guard
def relevance(
    photo: str | None,
    labels: str,
    templates: str,
    model: str,
    start_layer: float | None,
    progress=gr.Progress(),  # noqa: B008 (how Gradio passes a progress bar)
):
    """A relevance map per label (the most likely first, at most 12) over the photo as CLIP saw
    it; `start_layer` 0 or empty follows the last layer only."""
    image = open_photo(photo).image
    try:
        clip.check_relevance_family(model)
    except clip.NoRelevanceError as error:  # SigLIP: said in place, zero-shot still stands
        return None, _markdown([str(error)])
    clip.load_eager(model, progress=progress_callback(progress))
    found = clip.relevance_maps(
        image, labels, model=model, templates=templates, start_layer=start_layer or None,
        ranked=True,
    )  # fmt: skip
    return clip_render.relevance_gallery(found), _markdown(clip_render.describe_relevance(found))


def templates_of(name: str) -> str:
    """A named set of prompt templates as the templates box shows them, one per line (CLIP's
    own single template for a name it does not know)."""
    return "\n".join(clip.TEMPLATE_SETS.get(name, (clip.DEFAULT_TEMPLATE,)))


def _zero_shot_request(photo, labels, templates, model) -> clip.ZeroShotRequest:
    """One caller's photo, labels, templates and model: a `/zero_shot` request."""
    return clip.ZeroShotRequest(open_photo(photo).image, labels, model, templates)


def _zero_shot_outputs(answer: clip.ZeroShotResult) -> tuple:
    rows = [
        [label, round(p, 4), round(cosine, 4), round(logit, 2)]
        for label, p, cosine, logit in answer.table()
    ]
    return dict(answer.ranked()), rows, _markdown(clip_render.describe_zero_shot(answer))


# Gradio's batch: the whole lecture hall's requests at once, one image-encoder pass per model
# (`clip.zero_shot_batch` answers each request, or its LabError, in its place). A bad request
# among several gets its sentence in its notes (demo/batching.py).
classify_batch = batched(
    _zero_shot_request,
    lambda requests: backend().zero_shot_batch(requests),
    show=_zero_shot_outputs,
    refuse=lambda sentence: ({}, [], _markdown([sentence])),
    name="zero_shot_batch",
)


def _markdown(lines: list[str]) -> str:
    """Sentences for gr.Markdown; user text in them (labels) cannot become links or markup."""
    return "\n\n".join(_MARKUP.sub(r"\\\1", line) for line in lines)


_MARKUP = re.compile(r"([\\`*_\[\]<>#|~!])")


# ---------------------------------------------------------------------------------------------
# The similarity matrix of contrastive pretraining


def _build_similarity(lab: Lab, model: gr.Dropdown) -> None:
    gr.Markdown(
        "#### The similarity matrix: every image against every text\n"
        "CLIP is trained so that the true (image, caption) pairs, on the diagonal, score higher "
        "than every other pairing in the batch."
    )
    with gr.Row():
        with gr.Column(scale=2):
            picked = gr.CheckboxGroup(
                [YOUR_PHOTO, *sample_files()],
                value=DEFAULT_SAMPLES,
                label="Images (the lab's photo, samples…)",
                elem_id="clip-sim-samples",
            )
            uploads = gr.File(
                file_count="multiple",
                type="filepath",
                file_types=list(FILE_TYPES),
                label="…and your own images",
                height=140,
                elem_id="clip-sim-uploads",
            )
            photo_caption = gr.Textbox(
                DEFAULT_PHOTO_CAPTION,
                max_lines=1,
                label="What your photo shows (its text, so the true pair is outlined)",
                elem_id="clip-sim-photo-caption",
            )
            texts = gr.Textbox(
                _captions(DEFAULT_SAMPLES, DEFAULT_PHOTO_CAPTION),
                lines=5,
                max_lines=16,
                label=f"Texts (one per line, up to {clip.MAX_TEXTS})",
                elem_id="clip-sim-texts",
            )
            with gr.Row():
                softmax = gr.Checkbox(False, label="Row-wise softmax", elem_id="clip-sim-softmax")
                pairs = gr.Checkbox(
                    True, label="Image i goes with text i", elem_id="clip-sim-pairs"
                )
            with gr.Row():
                captions = gr.Button("Captions for the chosen samples", size="sm")
                run = gr.Button("Compare", variant="primary", elem_id="clip-compare")
        with gr.Column(scale=3):
            heat = view_image("Similarity matrix", elem_id="clip-sim-heatmap")
            notes = gr.Markdown(elem_id="clip-sim-notes")
            with gr.Row():
                pair_map = view_image(
                    "Click a cell: where that image shows that text",
                    height=260,
                    elem_id="clip-sim-pair",
                )
                pair_notes = gr.Markdown(elem_id="clip-sim-pair-notes")
    lab.shared.setdefault("clip_figures", []).extend(
        [(heat, "similarity matrix", ["model"]), (pair_map, "image-text map", ["model"])]
    )

    gr.on(
        [captions.click, photo_caption.submit],
        _captions,
        [picked, photo_caption],
        texts,
        api_visibility="private",
        **LIGHT_EVENT,
    )
    matrix_inputs = [lab.photo, picked, uploads, texts, model, softmax, pairs]
    run.click(compare, matrix_inputs, [heat, notes], api_name="similarity", **MODEL_EVENT)
    heat.select(
        show_pair, matrix_inputs, [pair_map, pair_notes], api_visibility="private", **MODEL_EVENT
    )


def _captions(chosen, photo_caption) -> str:
    """One text per chosen image, in order: the samples' captions and yours for your photo."""
    return "\n".join(
        (photo_caption or "").strip() if name == YOUR_PHOTO else clip.SAMPLE_CAPTIONS.get(name, "")
        for name in chosen or ()
    )


@guard
def compare(
    photo: str | None,
    picked: list[str] | None,
    uploads: list[str] | None,
    texts: str,
    model: str,
    softmax: bool,
    pairs: bool,
    progress=gr.Progress(),  # noqa: B008 (how Gradio passes a progress bar)
):
    """Images (the lab's photo, samples, uploads) against texts: the annotated heat map."""
    images, names = _gather_images(photo, picked, uploads)
    load_model(model, topic="clip", progress=progress_callback(progress))
    matrix = clip.compare(images, texts, model=model)
    heat = clip_render.draw_similarity(
        matrix, images, names, softmax=bool(softmax), pairs=bool(pairs)
    )
    return heat, _markdown(clip_render.describe_similarity(matrix, pairs=bool(pairs)))


@guard
def show_pair(
    photo,
    picked,
    uploads,
    texts,
    model,
    softmax,
    pairs,
    event: gr.SelectData,
    progress=gr.Progress(),  # noqa: B008 (how Gradio passes a progress bar)
):
    """The relevance map of the clicked cell's text in the clicked cell's image."""
    images, names = _gather_images(photo, picked, uploads)
    matrix = clip.compare(images, texts, model=model)  # embeddings come from the cache
    x, y = event.index
    cell = clip_render.similarity_cell(
        matrix, images, names, x, y, softmax=bool(softmax), pairs=bool(pairs)
    )
    if cell is None:
        return gr.skip(), "Click a cell of the matrix to see where that image shows that text."
    row, col = cell
    clip.load_eager(model, progress=progress_callback(progress))
    found = clip.relevance_maps(images[row], [matrix.texts[col]], model=model)
    lines = [f"I{row + 1} ({names[row]}) with T{col + 1}: “{matrix.texts[col]}”."]
    lines += clip_render.describe_relevance(found)
    return map_over(found.image, found.maps[0], side=256), _markdown(lines)


def _gather_images(photo, picked, uploads) -> tuple[list, list[str]]:
    samples = sample_files()
    picked = list(picked or [])
    unknown = [name for name in picked if name != YOUR_PHOTO and name not in samples]
    if unknown:
        raise LabError(f"There is no sample called {str(unknown[0])[:40]!r}.")
    if isinstance(uploads, str):
        uploads = [uploads]
    count = len(picked) + len(uploads or [])
    if count > clip.MAX_IMAGES:
        raise LabError(
            f"Please compare at most {clip.MAX_IMAGES} images at a time; you chose {count}."
        )
    images, names = [], []
    for name in picked:
        images.append(open_photo(photo).image if name == YOUR_PHOTO else load_image(samples[name]))
        names.append(name)
    for path in uploads or []:
        images.append(load_image(path))
        names.append(Path(path).stem)
    if not images:
        raise LabError("Please choose at least one image: a sample, your photo, or an upload.")
    return images, names


# ---------------------------------------------------------------------------------------------
# Robustness probe: CLIP vs an ImageNet CNN on distorted photos


def _build_probe(lab: Lab, model: gr.Dropdown) -> None:
    gr.Markdown(
        "#### Robustness: which one holds up?\n"
        "The paper's robustness table compares an ImageNet ResNet with CLIP on sketches, "
        "renditions and other shifts. Here both classify your photo changed a few ways; CLIP "
        "uses the 1000 ImageNet class names as its labels."
    )
    kernel_text = lab.shared.get("kernel_text")
    offered = [(title, name) for name, title in clip_probe.DISTORTIONS.items()]
    if kernel_text is None:  # no Convolution tab in this app
        offered = [(title, name) for title, name in offered if name != "kernel"]
    with gr.Row(equal_height=True):
        distortions = gr.CheckboxGroup(
            offered,
            value=list(clip_probe.DEFAULT_DISTORTIONS),
            label="Show the photo…",
            scale=3,
            elem_id="clip-probe-distortions",
        )
        strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Blur and noise strength", scale=1)
        cnn = gr.Dropdown(
            [(f"{get_spec(name).title}", name) for name in choices("cnn")],
            # ResNet-50 as in the paper's comparison, else a network whose weights are here.
            value=default_choice(list(dict.fromkeys([clip_probe.PROBE_CNN, *choices("cnn")]))),
            label="ImageNet CNN",
            scale=1,
            elem_id="clip-probe-cnn",
        )
    with gr.Row():
        if kernel_text is not None:
            edit = gr.Button("Edit your kernel (Convolution tab)", size="sm")
            edit.click(
                lambda: gr.Tabs(selected="convolution"),
                None,
                lab.tabs,
                api_visibility="private",
                **LIGHT_EVENT,
            )
        run = gr.Button("Run the probe", variant="primary", elem_id="clip-probe-run")
    table = view_image("Top ImageNet classes", elem_id="clip-probe-image")
    notes = gr.Markdown(elem_id="clip-probe-notes")
    lab.shared.setdefault("clip_figures", []).append((table, "robustness probe", ["model"]))
    inputs = [lab.photo, distortions, strength, model, cnn]
    if kernel_text is not None:
        inputs.append(kernel_text)
    run.click(run_probe, inputs, [table, notes], api_name="robustness", **MODEL_EVENT)


@guard
def run_probe(
    photo: str | None,
    distortions: list[str] | None,
    strength: float,
    clip_model: str,
    cnn_model: str,
    kernel_text: str | None = None,
    progress=gr.Progress(),  # noqa: B008 (how Gradio passes a progress bar)
):
    """The probe's table as a figure, and a line on what ✓ and ✗ mean."""
    image = open_photo(photo).image
    clip_spec, cnn_spec = get_spec(clip_model, "clip"), get_spec(cnn_model, "cnn")
    try:  # load with a progress bar; a missing model is shown in its cells by the probe
        load_model(clip_model, topic="clip", progress=progress_callback(progress))
    except LabError:
        pass
    result = clip_probe.probe(
        image,
        distortions=distortions or (),
        strength=strength,
        kernel_text=kernel_text,
        clip_model=clip_model,
        cnn_model=cnn_model,
    )
    figure = clip_render.draw_probe(
        result,
        clip_title=clip_spec.title,
        cnn_title=cnn_spec.title.split(" (")[0],
    )
    return figure, _markdown(clip_render.describe_probe(result))
