"""The Convolution tab's last section: a convolutional layer of several C×k×k filters on the photo,
edited as grids (the first four) or as text, with one output map per filter and the shapes."""

from __future__ import annotations

import gradio as gr

from .common import LIGHT_EVENT, Lab, guard, open_photo
from vlmlab.errors import LabError
from vlmlab.kernels.layer import (
    LAYER_PRESET,
    LAYER_PRESET_NAMES,
    apply_conv_layer,
    filter_cells,
    filter_from_cells,
    format_filters,
    parse_bias,
    parse_filters,
    preset_names,
)
from vlmlab.kernels.render import draw_layer_maps

FILTER_GRIDS = 4  # the layer's first filters shown as editable grids
LAYER_MAP_SIDE = 300  # each output map of the layer, four to a row across the page


def build(lab: Lab, padding: gr.Radio, stride: gr.Slider) -> gr.Image:
    """The section (inside the tab, after the worked example), sharing the tab's padding and
    stride; returns the output maps' image, a figure to keep."""
    with gr.Accordion("A convolutional layer with several filters", open=False):
        gr.Markdown(
            "Each filter is C×k×k: one k×k block per channel (R, G, B), applied to its channel "
            "and summed, plus the filter's bias — one output map per filter, as in a CNN's "
            "first layer. Edit a cell (fractions like 1/3 work); the maps follow."
        )
        with gr.Row(equal_height=True):
            bias_text = gr.Textbox(value="0 0 0 0", label="Biases (one per filter)", scale=2)
            relu = gr.Checkbox(False, label="ReLU (negatives → 0)", scale=1)
            run_layer = gr.Button("Run the layer", variant="primary", scale=1)
        layer_text = gr.Markdown()
        filter_grids = []
        for pair in ((0, 1), (2, 3)):  # two to a row: every column of R, G and B in view
            with gr.Row():
                for i in pair:
                    filter_grids.append(
                        gr.Dataframe(
                            value=filter_cells(LAYER_PRESET[i]),
                            type="array",
                            datatype="str",
                            headers=_channel_headers(LAYER_PRESET.shape[1], 3),
                            interactive=True,
                            label=_filter_label(i, LAYER_PRESET_NAMES[i]),
                            elem_id=f"layer-filter-{i + 1}",
                        )
                    )
        as_text = "…or as text: any number of filters, a line --- between them"
        with gr.Accordion(as_text, open=False):
            filters_text = gr.Textbox(
                value=format_filters(LAYER_PRESET), lines=12, max_lines=60, label="Filters"
            )
        layer_maps = gr.Image(
            label="Output maps (red > 0 > blue)", show_label=False, interactive=False
        )

    layer_inputs = [lab.photo, filters_text, bias_text, padding, stride, relu]
    gr.on(
        [run_layer.click, relu.change],
        guard(show_layer),
        layer_inputs,
        [layer_maps, layer_text],
        api_name="conv_layer",
        **LIGHT_EVENT,
    )
    # The grids and the text are one set of filters: an edited cell rewrites the text and the
    # maps follow; edited text refills the grids (the first four filters, if they are C×k×k).
    for i, filter_grid in enumerate(filter_grids):
        filter_grid.input(
            guard(_grids_to_text(i)),
            [filters_text, filter_grid],
            [filters_text, layer_text],
            api_visibility="private",
            **LIGHT_EVENT,
        ).success(
            guard(show_layer),
            layer_inputs,
            [layer_maps, layer_text],
            api_visibility="private",
            trigger_mode="always_last",
            **LIGHT_EVENT,
        )
    filters_text.input(
        text_to_filter_grids, filters_text, filter_grids, api_visibility="private", **LIGHT_EVENT
    )
    return layer_maps


# ---------------------------------------------------------------------------------------------
# Handlers


def show_layer(photo, filters, bias, padding, stride, relu):
    """The layer's N output maps for the photo, and the tensor shapes in and out. `filters` and
    `bias` are text: the filters' blocks separated by ---, one number per filter."""
    filters = parse_filters(filters)
    bias = parse_bias(bias, len(filters))
    image = open_photo(photo).image
    maps = apply_conv_layer(image, filters, bias, padding=padding, stride=stride, relu=relu)
    n, h, w = maps.shape
    k = filters.shape[-1]
    weights = f"{n}×{filters.shape[1]}×{k}×{k}" if filters.ndim == 4 else f"{n}×{k}×{k}"
    shapes = (
        f"Input 3×{image.height}×{image.width} → weights {weights} (+ {n} biases) "
        f"→ output {n}×{h}×{w}" + (", after ReLU." if relu else ".")
    )
    return draw_layer_maps(maps, preset_names(filters), side=LAYER_MAP_SIDE), shapes


def _grids_to_text(index: int):
    def grid_to_filters(text, cells):
        """Filter `index` edited in its grid → the layer's text (the other filters kept)."""
        filters = parse_filters(text)  # (N, C, k, k), or (N, k, k): one block for every channel
        channels = filters.shape[1] if filters.ndim == 4 else 1
        edited = filter_from_cells(cells, channels, what=f"filter {index + 1}")
        edited = edited if filters.ndim == 4 else edited[0]
        if index >= len(filters) or edited.shape != filters.shape[1:]:
            raise LabError(f"Filter {index + 1} must stay {'×'.join(map(str, filters.shape[1:]))}.")
        filters = filters.copy()
        filters[index] = edited
        return format_filters(filters), ""

    grid_to_filters.__name__ = f"filter_{index + 1}_to_text"
    return grid_to_filters


def text_to_filter_grids(text):
    """The first four filters of the text into the grids; grids without a filter are hidden."""
    try:
        filters = parse_filters(text)
    except LabError:
        return [gr.skip()] * FILTER_GRIDS
    names = preset_names(filters)
    updates = []
    for i in range(FILTER_GRIDS):
        if i >= len(filters):
            updates.append(gr.update(visible=False))
            continue
        weights = filters[i]
        channels = weights.shape[0] if weights.ndim == 3 else 1
        updates.append(
            gr.update(
                value=filter_cells(weights),
                headers=_channel_headers(channels, weights.shape[-1]),
                label=_filter_label(i, names[i] if names else None),
                visible=True,
            )
        )
    return updates


def _channel_headers(channels: int, size: int) -> list[str]:
    """Column headers of a filter's grid: the channel, then the offset (R −1, R 0, R +1, G −1…)."""
    names = "RGB" if channels == 3 else [f"c{c + 1}" for c in range(channels)]
    if channels == 1:
        return offsets(size)
    return [f"{name} {offset}" for name in names for offset in offsets(size)]


def _filter_label(index: int, name: str | None) -> str:
    return f"Filter {index + 1}" + (f": {name}" if name else "") + " — R, G, B blocks"


def offsets(size: int) -> list[str]:
    """Column headers of a k×k kernel grid: −1 0 +1 (offsets from the centre column)."""
    return [f"{j - size // 2:+d}".replace("+0", "0").replace("-", "−") for j in range(size)]
