"""The CNN tab: inside AlexNet, VGG, ResNet and MobileNetV2: predictions, every layer's feature
maps, what a channel wants to see (its section is demo/cnn_featurevis.py), the first layer's
learned filters, Grad-CAM class evidence and the revolution of depth."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from . import cnn_featurevis, links, own_model
from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    Views,
    guard,
    open_dropdown,
    open_photo,
    progress_callback,
    when_shown,
)
from .batching import batched
from .figures import keep_figures
from vlmlab import cnn
from vlmlab.cnn import depth as cnn_depth
from vlmlab.cnn import render as cnn_render
from vlmlab.cnn import gradcam
from vlmlab.backend import backend
from vlmlab.errors import LabError
from vlmlab.cnn.render import draw_depth_chart
from vlmlab.kernels import format_kernel
from vlmlab.models import choices, get_spec, load_model

TITLE = "CNN"
TOP_CLASS = -1  # the class dropdown's "the top class"
ORDER_CHOICES = [("most active first", "activation"), ("channel number", "index")]
MAX_TOP_K = 1000
FILTER_DIGITS = 3  # significant digits of a learned filter sent to the Convolution tab

INTRO = """### Inside a CNN
AlexNet (Krizhevsky, Sutskever & Hinton, 2012) classifies a photo into 1000 ImageNet classes.
Pick a network, see what it predicts, then look inside: what each layer responds to, the
filters the first layer learned, where the evidence for a class lies, and how depth grew."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    cnn.prepare()  # trace every network now, while no other request runs (see cnn.prepare)
    model_choices = [(get_spec(name).title, name) for name in choices(cnn.TOPIC)]
    first_model = cnn.default_choice(choices(cnn.TOPIC))  # AlexNet, when its weights are here
    first_layers = cnn.layer_names(first_model)
    gr.Markdown(INTRO)
    with gr.Row():
        model = own_model.model_dropdown(
            cnn.TOPIC,
            model_choices,
            value=first_model,
            label="Network",
            scale=2,
            allow_custom_value=True,  # a torchvision classifier by name; the engine checks it
        )
        top_k = gr.Number(5, minimum=1, maximum=MAX_TOP_K, precision=0, label="Top-k", scale=1)
        classify = gr.Button("Classify the photo", variant="primary", scale=1)
    chosen_by_name = own_model.build(lab, cnn.TOPIC, model)
    prediction = gr.Label(label="Predictions (ImageNet classes)", elem_id="cnn-prediction")

    with gr.Accordion("What each layer sees: feature maps", open=True):
        with gr.Row():
            layer = open_dropdown(  # the layers of a network chosen by name, too
                first_layers, value=first_layers[0], label="Layer",
                api_note="a layer of the chosen network, named as in its list (conv1, …)",
            )  # fmt: skip
            order = gr.Radio(ORDER_CHOICES, value="activation", label="Order the channels")
            channel = gr.Number(None, precision=0, label="Channel (click a tile)", minimum=0)
            show = gr.Button("Show feature maps", variant="primary")
        with gr.Row():
            with gr.Column(scale=3):
                # A heading instead of the image's own label, which would cover the first tiles'
                # channel numbers.
                gr.Markdown("**Every channel of the layer, numbered — click one**")
                grid = gr.Image(
                    label="Every channel of the layer — click one",
                    show_label=False,
                    format="png",
                    interactive=False,
                    elem_id="cnn-grid",
                )
            with gr.Column(scale=2):
                channel_image = gr.Image(
                    label="The channel, large", format="png", interactive=False
                )
                overlay = gr.Image(label="…over what the network saw", interactive=False)
        caption = gr.Markdown(elem_id="cnn-caption")
        wants = cnn_featurevis.build(lab, model, layer, channel)

    with gr.Accordion("What the first layer learned: filters", open=False):
        gr.Markdown(
            "Each tile is one learned k×k×3 filter of the first convolution, its three colour "
            "channels shown as RGB (stretched to the full range). Send one to the Convolution "
            "tab to apply it next to the hand-made kernels."
        )
        with gr.Row():
            filter_grid = gr.Image(
                label="Learned filters — click one", format="png", interactive=False, scale=3
            )
            with gr.Column(scale=1):
                filter_index = gr.Number(0, precision=0, minimum=0, label="Filter")
                show_filters = gr.Button("Show the filters")
                send = gr.Button("Send to Convolution", visible="kernel_text" in lab.shared)
                filter_text = gr.Markdown()

    with gr.Accordion("Where is the evidence? Grad-CAM", open=False):
        gr.Markdown(f"_{gradcam.NOTE}_")
        with gr.Row():
            target = open_dropdown(
                _class_choices(first_model), value=TOP_CLASS, label="Class", scale=3,
                api_types=({"type": "integer"}, {"type": "string"}), api_listed=False,
                api_note=f"{TOP_CLASS} for the network's top class, a class number (0 to 999 "
                "for ImageNet), or a class name such as 'tabby'",
            )  # fmt: skip
            explain = gr.Button("Show the evidence", variant="primary", scale=1)
        with gr.Row():
            evidence = gr.Image(label="Grad-CAM heat over what the network saw", interactive=False)
            evidence_text = gr.Markdown()

    with gr.Accordion("The revolution of depth", open=False):
        rows = cnn_depth.depth_table()  # from the weights' metadata: no weights needed
        with gr.Row():
            depth = gr.Dataframe(
                depth_frame(rows), label="Depth, size and accuracy", interactive=False, scale=3
            )
            depth_chart = gr.Image(
                draw_depth_chart(rows),
                label="Depth by year, coloured by ImageNet top-1",
                show_label=False,
                format="png",
                interactive=False,
                elem_id="cnn-depth-chart",
                scale=2,
            )
        compare = gr.Button("Compare every network on this photo", variant="primary")
        side_by_side = gr.Dataframe(label="Top-5 on the same photo", interactive=False)
        depth_notes = gr.Markdown()
    keep_figures(
        "cnn",
        [
            (grid, "feature maps", ["model", "layer"]),
            (channel_image, "channel", ["model", "layer", "channel"]),
            (overlay, "channel over the photo", ["model", "layer", "channel"]),
            (filter_grid, "first-layer filters", ["model"]),
            (evidence, "grad-cam", ["model"]),
            (depth_chart, "depth by year", []),
            (wants["wanted"], "the image a channel wants", cnn_featurevis.KEYS, "featurevis"),
            (wants["on_photo"], "channel over the photo", ["model", "layer", "channel"]),
            (wants["examples"], "where it fires hardest", ["model", "layer", "channel"]),
        ],
        {"model": model, "layer": layer, "channel": channel, "direction": wants["direction"],
         "steps": wants["steps"]},
    )
    if lab.restyled is not None:  # the chart drawn at start, redrawn in the visitor's style
        lab.restyled.then(
            guard(lambda: draw_depth_chart(rows)), None, depth_chart, api_visibility="private"
        )

    # Public endpoints (gradio_client): classify, feature_maps, grad_cam, compare_cnns.
    classify.click(
        guard(classify_batch),
        [lab.photo, model, top_k],
        prediction,
        api_name="classify",
        batch=True,
        max_batch_size=8,
        **MODEL_EVENT,
    )
    views = Views(
        prediction=prediction, grid=grid, channel_image=channel_image, overlay=overlay,
        caption=caption, channel=channel, layer=layer, target=target, evidence=evidence,
        evidence_text=evidence_text, filter_grid=filter_grid, filter_text=filter_text,
        filter_index=filter_index, depth=depth, side_by_side=side_by_side, depth_notes=depth_notes,
    )  # fmt: skip
    channel_views = views.pick(*CHANNEL_VIEWS)
    view_outputs = channel_views.outputs
    show.click(
        channel_views.wire(guard(show_feature_maps)),
        [lab.photo, model, layer, order, channel],
        view_outputs,
        api_name="feature_maps",
        **MODEL_EVENT,
    )
    evidence_views = views.pick("evidence", "evidence_text")
    explain.click(
        evidence_views.wire(guard(show_evidence)),
        [lab.photo, model, target],
        evidence_views.outputs,
        api_name="grad_cam",
        **MODEL_EVENT,
    )
    depth_views = views.pick("depth", "side_by_side", "depth_notes")
    compare.click(
        depth_views.wire(guard(compare_networks)),
        [lab.photo, model],
        depth_views.outputs,
        api_name="compare_cnns",
        **MODEL_EVENT,
    )

    # Looking around: a new layer or order shows its most active channel; a click picks one.
    private = {"api_visibility": "private", "trigger_mode": "always_last"}
    network = views.pick("layer", "channel", "target")
    for chosen in (model.input, chosen_by_name.then):
        chosen(
            network.wire(guard(pick_model)), model, network.outputs, **private, **LIGHT_EVENT
        )
    gr.on(
        [layer.input, order.input],
        channel_views.wire(guard(show_first_channel)),
        [lab.photo, model, layer, order],
        view_outputs,
        **private,
        **MODEL_EVENT,
    )
    channel.submit(
        channel_views.wire(guard(show_feature_maps)),
        [lab.photo, model, layer, order, channel],
        view_outputs,
        **private,
        **MODEL_EVENT,
    )
    grid.select(
        channel_views.wire(guard(pick_channel)),
        [lab.photo, model, layer, order],
        view_outputs,
        **private,
        **MODEL_EVENT,
    )
    filters = views.pick("filter_grid", "filter_text")
    gr.on(
        [show_filters.click, filter_index.submit],
        filters.wire(guard(show_learned_filters)),
        [model, filter_index],
        filters.outputs,
        **private,
        **MODEL_EVENT,
    )
    picked_filter = views.pick("filter_grid", "filter_text", "filter_index")
    filter_grid.select(
        picked_filter.wire(guard(pick_filter)),
        model,
        picked_filter.outputs,
        **private,
        **MODEL_EVENT,
    )
    # On screen, the tab answers a new photo by itself (as it does when it is opened): the
    # predictions and the layer shown. Grad-CAM waits for its button; its old answer goes.
    photo_views = views.pick("prediction", *CHANNEL_VIEWS)
    when_shown(
        lab,
        TITLE,
        photo_views.wire(guard(show_photo)),
        [lab.photo, model, top_k, layer, order],
        photo_views.outputs,
        trigger_mode="always_last",
        **MODEL_EVENT,
    )
    lab.photo.change(  # the old evidence goes with the old photo
        lambda: (None, ""), None, evidence_views.outputs, api_visibility="private"
    )
    links.register(
        lab,
        "cnn",
        {"model": model, "layer": layer, "channel": channel, "top_k": top_k},
        links.shown_step(lab, TITLE),
        (
            channel_views.wire(show_linked_channel),
            [lab.photo, model, layer, order],
            view_outputs,
            MODEL_EVENT,
        ),
        adapt={"layer": linked_layer},
    )
    if "kernel_text" in lab.shared:
        send.click(  # the filters are cached; a miss loads the network: the model slot
            guard(send_filter),
            [model, filter_index],
            [lab.shared["kernel_text"], lab.tabs],
            **private,
            **MODEL_EVENT,
        )


def _class_choices(model: str) -> list[tuple[str, int]]:
    names = cnn.categories(model)
    return [("the top class", TOP_CLASS)] + [(f"{name} (#{i})", i) for i, name in enumerate(names)]


# ---------------------------------------------------------------------------------------------
# Handlers: an engine call plus a few lines each


def _classify_request(photo, model, top_k) -> tuple:
    """One caller's photo, network and top-k, checked: a `/classify` request."""
    return open_photo(photo).image, model, cnn.check_top_k(top_k)


def _classify_many(requests: list[tuple]) -> list:
    """Requests for one network: one forward (`cnn.classify_many`)."""
    images, models, top_ks = zip(*requests)
    return backend().classify_many(list(images), list(models), list(top_ks))


# Gradio's batch of simultaneous requests (lists of photos, networks, top-ks) → one forward per
# network, answers in request order; a request that cannot be answered (no photo, weights not
# here) gets its reason as its label (demo/batching.py).
classify_batch = batched(
    _classify_request,
    _classify_many,
    show=lambda found: (dict(found),),
    refuse=lambda sentence: (sentence,),
    group=lambda request: request[1],
    name="classify_batch",
)


CHANNEL_VIEWS = ("grid", "channel_image", "overlay", "caption", "channel")


def _view_outputs(view: cnn.FeatureView) -> dict:
    pictures = cnn_render.draw_features(view)
    return {
        "grid": pictures.grid,
        "channel_image": pictures.channel_image,
        "overlay": pictures.overlay,
        "caption": view.caption,
        "channel": view.channel,
    }


def show_feature_maps(photo, model, layer, order, channel, progress=gr.Progress()) -> dict:
    """One layer's channels (one forward per photo and network; then re-rendering only)."""
    load_model(model, topic=cnn.TOPIC, progress=progress_callback(progress))
    image = open_photo(photo).image
    return _view_outputs(cnn.feature_maps(image, model, layer, order or "activation", channel))


def linked_layer(layer: str, settings):
    """A link's layer with the layer list of the link's network (the engine checks the name)."""
    if settings.model is None:
        return layer
    try:
        names = cnn.layer_names(settings.model)
    except LabError:
        return layer
    return gr.Dropdown(choices=names, value=layer)


@guard
def show_linked_channel(view, photo, model, layer, order, progress=None):
    """The channel a link names, once the tab shows its layer."""
    channel = links.settings_of(view, "cnn").channel
    if channel is None:
        return {}
    return show_feature_maps(photo, model, layer, order, channel, progress=progress)


def show_photo(photo, model, top_k, layer, order, progress=gr.Progress()) -> dict:
    """What the tab shows for a photo without a click: the top-k, and the layer's channels."""
    load_model(model, topic=cnn.TOPIC, progress=progress_callback(progress))
    image = open_photo(photo).image
    found = cnn.classify(image, model, cnn.check_top_k(top_k))
    view = cnn.feature_maps(image, model, layer or None, order or "activation", None)
    return {"prediction": dict(found), **_view_outputs(view)}


def show_first_channel(photo, model, layer, order, progress=gr.Progress()) -> dict:
    return show_feature_maps(photo, model, layer, order, None, progress)


def pick_channel(photo, model, layer, order, event: gr.SelectData) -> dict:
    """A click on the grid: the channel under it, large."""
    image = open_photo(photo).image
    x, y = event.index
    channel = cnn_render.channel_at(cnn.feature_maps(image, model, layer, order), x, y)
    if channel is None:  # a gap between tiles
        return {}
    return _view_outputs(cnn.feature_maps(image, model, layer, order, channel))


def pick_model(model) -> dict:
    """A new network: its layers and classes (read from its structure; nothing is loaded)."""
    names = cnn.layer_names(model)
    shown = {"layer": gr.Dropdown(choices=names, value=names[0]), "channel": None}
    if cnn.categories(model) != cnn.categories(cnn.DEFAULT_MODEL):
        shown["target"] = gr.Dropdown(choices=_class_choices(model))
    return shown


def show_learned_filters(model, index, progress=gr.Progress()) -> dict:
    load_model(model, topic=cnn.TOPIC, progress=progress_callback(progress))
    filters = cnn.learned_filters(model)
    kernel = filters.kernel(index or 0)
    size = "×".join(map(str, kernel.shape[1:]))
    text = (
        f"{filters.layer}: {len(filters.weights)} filters of {size}×3. Filter {int(index or 0)} "
        f"ranges from {kernel.min():.3g} to {kernel.max():.3g}."
    )
    return {"filter_grid": cnn_render.filter_picture(filters, index or 0), "filter_text": text}


def pick_filter(model, event: gr.SelectData) -> dict:
    index = cnn_render.filter_at(cnn.learned_filters(model), *event.index)
    if index is None:
        return {}
    return {**show_learned_filters(model, index, None), "filter_index": index}


def send_filter(model, index):
    """The chosen learned filter as R, G, B kernel text in the Convolution tab, which applies it."""
    kernel = cnn.learned_filters(model).kernel(index or 0)
    return format_kernel(cnn.rounded(kernel, FILTER_DIGITS)), gr.Tabs(selected="convolution")


def show_evidence(photo, model, target, progress=gr.Progress()) -> dict:
    load_model(model, topic=cnn.TOPIC, progress=progress_callback(progress))
    chosen = None if target in (None, "", TOP_CLASS, str(TOP_CLASS)) else target
    found = gradcam.grad_cam(open_photo(photo).image, model, chosen)
    text = (
        f"**{found.label}** (class {found.class_index}, probability {found.probability:.1%}), "
        f"from the feature maps of {found.layer}."
    )
    return {"evidence": cnn_render.draw_evidence(found), "evidence_text": text}


def compare_networks(photo, model=None) -> dict:
    """The depth table, and each network's top-5 for the photo (a note where one is missing);
    a network chosen by name joins the table."""
    extra = (model,) if model and get_spec(model, cnn.TOPIC).by_name else ()
    found = cnn_depth.compare_models(open_photo(photo).image, 5, extra=extra)
    # At least one row, so a network without weights here still gets its "(not on this machine)".
    ranks = max((len(p) for p in found.predictions.values()), default=1)
    columns = {
        row.model: [f"{label} ({p:.0%})" for label, p in found.predictions[row.model]]
        if row.model in found.predictions
        else ["(not on this machine)"] + [""] * (ranks - 1)
        for row in found.rows
    }
    notes = "\n".join(f"- {message}" for message in found.notes.values())
    side_by_side = pd.DataFrame({"rank": list(range(1, ranks + 1)), **columns})
    return {"depth": depth_frame(found.rows), "side_by_side": side_by_side, "depth_notes": notes}


def depth_frame(rows) -> pd.DataFrame:
    """The depth table (`cnn_depth.DepthRow`s) as the tab shows it."""
    return pd.DataFrame(
        {
            "network": [row.title for row in rows],
            "paper": [f"{row.paper} ({row.year})" for row in rows],
            "depth (weight layers)": [row.depth for row in rows],
            "parameters (millions)": [round(row.parameters / 1e6, 1) for row in rows],
            "GFLOPs (224×224)": [row.gflops for row in rows],
            "ImageNet top-1 (%)": [round(row.top1, 1) for row in rows],
        }
    )
