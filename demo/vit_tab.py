"""The ViT tab: "an image is worth 16×16 words": patches, position embeddings and attention."""

from __future__ import annotations

import gradio as gr

from . import links, own_model
from .common import (
    LIGHT_EVENT,
    MODEL_EVENT,
    Lab,
    Views,
    guard,
    open_dropdown,
    open_photo,
    progress_callback,
    view_image,
    when_shown,
)
from .figures import keep_figures
from vlmlab import vit
from vlmlab.vit import cost as vit_cost
from vlmlab.backend import backend
from vlmlab.errors import LabError
from vlmlab.models import choices, get_spec
from vlmlab.vit.render import (
    draw_attention_views,
    draw_patch_grid,
    draw_patch_steps,
    draw_position_similarity,
    patch_at,
)

TITLE = "ViT"

# The layer slider's bound until a model is loaded (then it is the model's own depth); the
# engine checks the real range, whatever the slider allowed.
LAYER_BOUND = 64

INTRO = """**An image is worth 16×16 words** (Dosovitskiy et al., 2021). Self-attention over every
pixel is far too costly, so a Vision Transformer cuts the photo into patches, projects each one to a
token, adds a learned position embedding, and runs the Transformer encoder of NLP on the tokens.
Click a patch to follow it; pick a layer and a head to see where a token looks."""


def _inspection(path: str | None, model: str) -> vit.ViTInspection:
    return backend().inspect_vit(open_photo(path).image, model)


def _cost_table(height, width, patch) -> str:
    cost = vit_cost.patch_cost(height, width, patch)
    header, *rows = vit_cost.patch_cost_rows(cost)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + vit_cost.describe_patch_cost(cost)


def _attention_views(inspection: vit.ViTInspection, layer, head, query) -> dict:
    views = draw_attention_views(inspection, layer, head, query)
    return {
        "heat_map": views.heat_map,
        "heads": views.heads,
        "rollout": views.rollout,
        "attention_text": views.text,
    }


def _kept(check, value, fallback):
    """`value` if it is still valid for the model shown, else `fallback` (after a model switch)."""
    try:
        check(value)
        return value
    except LabError:
        return fallback


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)

    with gr.Accordion(
        "1 · Why patches? Self-attention on pixels", open=True, elem_classes=["lab-secondary"]
    ):
        with gr.Row():
            height = gr.Number(224, label="image height H", precision=0, minimum=1)
            width = gr.Number(224, label="image width W", precision=0, minimum=1)
            patch_side = gr.Number(16, label="patch size p", precision=0, minimum=1)
        cost = gr.Markdown(_cost_table(224, 224, 16))

    with gr.Row(equal_height=True):
        model = own_model.model_dropdown(
            "vit",
            [(get_spec(name).title, name) for name in choices("vit")],
            value=choices("vit")[0],
            label="Vision Transformer",
            scale=2,
        )
        run = gr.Button("Look inside", variant="primary", scale=1)
    own_model.build(lab, "vit", model)
    with gr.Row():
        summary = gr.Markdown("Pick a model and press **Look inside**.")
        predictions = gr.Label(label="The classifier's top-5", num_top_classes=vit.TOP_K)

    with gr.Accordion("2 · Patches: from pixels to tokens", open=True), gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("The photo as the model sees it, cut into numbered patches. **Click one.**")
            grid = gr.Image(
                label="patch grid",
                show_label=False,
                type="pil",
                format="png",
                interactive=False,
                elem_id="vit-grid",
                buttons=[],  # nothing over the patch numbers
            )
            patch = gr.Number(1, label="patch", precision=0, minimum=1)
        steps = view_image("One patch: pixels → vector → token", scale=2)

    with gr.Accordion("3 · Attention: where does a token look?", open=True):
        with gr.Row():
            # Starts at its bound, so the first look moves it to the model's last layer.
            layer = gr.Slider(1, LAYER_BOUND, value=LAYER_BOUND, step=1, label="layer")
            # The slider's value as last shown, for the look events: Gradio checks a slider's
            # value against its bound *now*, and an earlier look (opening the tab, a new photo)
            # may have lowered the bound since this event was sent.
            layer_shown = gr.State(LAYER_BOUND)
            head = open_dropdown(
                [vit.MEAN], value=vit.MEAN, label="head", api_types=({"type": "integer"},),
                api_note=f"{vit.MEAN!r} (the mean over heads) or a head number from 1 to the "
                "model's number of heads",
            )  # fmt: skip
            query = gr.Textbox(
                vit.CLS, label="query: CLS or a patch number (or click the grid)", max_lines=1
            )
            with gr.Column(min_width=120):
                cls_button = gr.Button("Query = CLS", size="sm")
                show = gr.Button("Show attention", size="sm", variant="primary")
        with gr.Row():
            heat_map = view_image("Attention of the query (one head or the mean)")
            rollout = view_image("Attention rollout through all layers")
        # A heading instead of the image's own label, which would cover "head 1".
        gr.Markdown("**Every head of this layer** (each scaled to its own maximum)")
        heads = view_image(
            "Every head of this layer (each scaled to its own maximum)", show_label=False
        )
        attention_text = gr.Markdown()

    with gr.Accordion("4 · Learned position embeddings", open=False):
        gr.Markdown(
            "Tile (row, column) shows how similar that position's embedding is to every other "
            "position's. Nobody told the model about rows and columns: it learned them."
        )
        positions = view_image("Position embedding similarity")
        positions_note = gr.Markdown(elem_id="vit-positions-note")  # relative biases (BEiT)

    keep_figures(
        "vit",
        [
            (grid, "patch grid", ["model"]),
            (steps, "patch to token", ["model", "patch"]),
            (heat_map, "attention", ["model", "layer", "head", "query"]),
            (rollout, "attention rollout", ["model", "query"]),
            (heads, "every head", ["model", "layer", "query"]),
            (positions, "position similarity", ["model"]),
        ],
        {"model": model, "patch": patch, "layer": layer, "head": head, "query": query},
    )

    views = Views(
        summary=summary, predictions=predictions, grid=grid, steps=steps, positions=positions,
        positions_note=positions_note, layer=layer, layer_shown=layer_shown, head=head,
        query=query, patch=patch, heat_map=heat_map, heads=heads, rollout=rollout,
        attention_text=attention_text,
    )  # fmt: skip
    attention = views.pick(*ATTENTION_VIEWS)
    look_inputs = [lab.photo, model, layer_shown, head, query, patch]

    # -- events ---------------------------------------------------------------------------------

    when_shown(lab, TITLE, views.wire(look_inside), look_inputs, views.outputs, **MODEL_EVENT)
    links.register(
        lab,
        "vit",
        {"model": model, "layer": (layer, layer_shown), "head": head, "query": query},
        links.shown_step(lab, TITLE),
    )
    gr.on(
        [run.click, model.change],
        views.wire(look_inside),
        look_inputs,
        views.outputs,
        api_visibility="private",
        **MODEL_EVENT,
    )

    layer.input(lambda v: v, layer, layer_shown, api_visibility="private", **LIGHT_EVENT)
    attention_inputs = [lab.photo, model, layer, head, query]
    show.click(
        attention.wire(vit_attention),
        attention_inputs,
        attention.outputs,
        api_name="vit_attention",
        **MODEL_EVENT,
    )
    # A typed layer number counts as soon as it is typed (the box sends `input`, and `release`
    # only when it loses focus); dragging redraws the last position reached.
    # Every view below re-draws from the cached forward, but a cache miss (another photo or
    # model, an evicted entry) loads and runs the model: so they all wait for the model slot.
    gr.on(
        [layer.input, layer.release, head.input, query.submit],
        attention.wire(typed_attention),
        attention_inputs,
        attention.outputs,
        api_visibility="private",
        trigger_mode="always_last",
        **MODEL_EVENT,
    )
    cls_button.click(lambda: vit.CLS, None, query, api_visibility="private", **LIGHT_EVENT).then(
        attention.wire(vit_attention),
        attention_inputs,
        attention.outputs,
        api_visibility="private",
        **MODEL_EVENT,
    )
    picked = views.pick("patch", "query", "grid", "steps", *ATTENTION_VIEWS)
    grid.select(
        picked.wire(pick_patch),
        [lab.photo, model, layer, head],
        picked.outputs,
        api_visibility="private",
        **MODEL_EVENT,
    )
    patch_views = views.pick("grid", "steps")
    patch.submit(
        patch_views.wire(show_patch),
        [lab.photo, model, patch],
        patch_views.outputs,
        api_visibility="private",
        **MODEL_EVENT,
    )
    gr.on(
        [height.submit, width.submit, patch_side.submit, height.blur, width.blur, patch_side.blur],
        guard(_cost_table),
        [height, width, patch_side],
        cost,
        api_visibility="private",
        **LIGHT_EVENT,
    )


# ---------------------------------------------------------------------------------------------
# Handlers: component values → one engine call → values by name (`Views.wire` maps them)

ATTENTION_VIEWS = ("heat_map", "heads", "rollout", "attention_text")


@guard
def look_inside(
    photo,
    model,
    layer,
    head,
    query,
    patch,
    progress=gr.Progress(),  # noqa: B008 (Gradio injects a fresh tracker per call)
) -> dict:
    """Every view of the tab for the photo and model; the layer, head, query and patch shown
    are kept while the model has them, else reset (a model switch)."""
    backend().load(vit.load_vit, model, progress=progress_callback(progress))
    i = _inspection(photo, model)
    layer = _kept(lambda v: vit.check_layer(i, v), layer, i.num_layers)
    head = _kept(lambda v: vit.check_head(i, v), head, vit.MEAN)
    query = _kept(lambda v: vit.query_token(i, v), query, vit.CLS if i.has_cls else "1")
    patch = _kept(lambda v: vit.check_patch(i, v), patch, 1)
    return {
        "summary": vit.describe_model(i) + "".join(f"\n\n*{note}*" for note in i.notes),
        "predictions": dict(i.predictions) or None,
        "grid": draw_patch_grid(i, patch),
        "steps": draw_patch_steps(i, patch),
        "positions": None if i.position_note else draw_position_similarity(i),
        "positions_note": i.position_note,
        "layer": gr.update(maximum=i.num_layers, value=layer),
        "layer_shown": layer,
        "head": gr.update(choices=vit.head_choices(i), value=str(head)),
        "query": query,
        "patch": gr.update(maximum=i.num_patches, value=patch),
        **_attention_views(i, layer, head, query),
    }


@guard
def vit_attention(photo, model, layer, head, query) -> dict:
    """Where a token attends: heat map over the photo, all heads of the layer, rollout, text.
    `head` is "mean" or a head number; `query` is "CLS" or a patch number."""
    return _attention_views(_inspection(photo, model), layer, head, query)


def typed_attention(photo, model, layer, head, query) -> dict:
    """`vit_attention` as the layer box is typed in: a box emptied to type anew waits."""
    if layer is None:
        return {}
    return vit_attention(photo, model, layer, head, query)


@guard
def pick_patch(photo, model, layer, head, event: gr.SelectData) -> dict:
    """A click on the patch grid: that patch followed, and asked where it attends."""
    i = _inspection(photo, model)
    number = patch_at(i, *event.index)
    return {
        "patch": number,
        "query": str(number),
        "grid": draw_patch_grid(i, number),
        "steps": draw_patch_steps(i, number),
        **_attention_views(i, layer, head, number),
    }


@guard
def show_patch(photo, model, patch) -> dict:
    i = _inspection(photo, model)
    number = vit.check_patch(i, patch)
    return {"grid": draw_patch_grid(i, number), "steps": draw_patch_steps(i, number)}

