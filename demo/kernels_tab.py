"""The Convolution tab: kernels, preset or typed by hand, applied to the photo and stepped through
one output pixel at a time; the lecture's worked 5×5 ∗ 3×3 example; a layer of several filters
(its section is demo/conv_layer.py).
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from . import conv_layer, links
from .conv_layer import offsets
from .common import LIGHT_EVENT, Lab, Views, guard, open_photo, photo_problem
from .figures import keep_figures
from vlmlab.errors import LabError
from vlmlab.render import error_html
from vlmlab.kernels import (
    LECTURE_INPUT,
    LECTURE_KERNEL,
    PADDINGS,
    PRESETS,
    Convolution,
    cells_to_array,
    format_kernel,
    image_pixels,
    output_size,
    parse_kernel,
    preset_name,
    resize_kernel,
)
from vlmlab.kernels.render import (
    DISPLAY_MODES,
    MATRIX_CELL,
    MAX_MATRIX,
    draw_padded_matrix,
    render_kernel,
    render_step,
)

TITLE = "Convolution"
FIRST_PRESET = "sharpen"
GRID_SIZES = ("3×3", "5×5", "7×7")
GRID_LABEL = "Kernel grid: type in the cells (columns: offset from the centre)"
# The result goes to the browser as JPEG at quality 90 without chroma subsampling: ~2–5 ms for a
# 512² result where PNG takes ~60 ms and WebP ~25 ms, and faithful enough to zoom into.
RESULT_FORMAT = "jpeg"
JPEG_SETTINGS = {"quality": 90, "subsampling": 0}

INTRO = """Slide a small grid of numbers — a **kernel** — over the photo: each output pixel is the sum
of the window under the kernel times the kernel (**cross-correlation**, what CNN layers compute).
Tick *flip* to rotate the kernel 180° first: that is the **convolution**
g(x, y) = Σ k(u, v) f(x − u, y − v) of the lecture. Click the result to see one pixel worked out."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            preset = gr.Dropdown(["custom", *PRESETS], value=FIRST_PRESET, label="Preset kernel")
            lecture = gr.Button("Lecture example (5×5 ∗ 3×3)", size="sm")
            size = gr.Radio(list(GRID_SIZES), value="3×3", label="Grid size")
            grid = gr.Dataframe(
                value=_cells(PRESETS[FIRST_PRESET]),
                type="array",
                datatype="str",
                headers=offsets(3),
                interactive=True,
                elem_id="kernel-grid",
                label=GRID_LABEL + f" — the '{FIRST_PRESET}' preset",
            )
            kernel_text = gr.Textbox(
                value=format_kernel(PRESETS[FIRST_PRESET]),
                lines=5,
                max_lines=40,
                label="…or as text: one row per line (paste from numpy works; a blank line "
                "separates the channels of an R, G, B kernel)",
                elem_id="kernel-text",
            )
            status = gr.Markdown(elem_id="kernel-status")
        with gr.Column(scale=1, min_width=240):
            padding = gr.Radio(list(PADDINGS), value="reflect", label="Padding")
            stride = gr.Slider(1, 8, value=1, step=1, label="Stride")
            grayscale = gr.Checkbox(False, label="Grayscale first (BT.601 luma)")
            flip = gr.Checkbox(False, label="Flip the kernel 180° (convolution)")
            normalise = gr.Checkbox(False, label="Normalise by sum")
            mode = gr.Radio(
                [(label, key) for key, label in DISPLAY_MODES.items()],
                value="clip",
                label="Show the result as",
            )
            # No button here: every change above redraws at once. The hidden one carries the
            # public /apply_kernel endpoint.
            apply = gr.Button("Apply", visible=False)
        with gr.Column(scale=2):
            result = gr.Image(
                label="Result — click a pixel to step through it",
                type="pil",
                format=RESULT_FORMAT,
                interactive=False,
                elem_id="kernel-result",
            )
            arithmetic = gr.Textbox(label="Output size", lines=5, interactive=False)
    with gr.Accordion("Step through one output pixel", open=True):
        with gr.Row():
            moves = {
                label: gr.Button(label, size="sm", min_width=60)
                for label in ("← left", "→ right", "↑ up", "↓ down")
            }
        step_view = gr.HTML(elem_id="kernel-step")
    with gr.Accordion("The lecture's worked example: a 5×5 matrix", open=False) as example_box:
        gr.Markdown(
            "The same kernel, padding, stride and flip, on a small matrix you can edit. Left: the "
            "input with its padding (grey) and the window; right: the output — click a cell to "
            "step through it."
        )
        matrix = gr.Dataframe(
            value=_cells(LECTURE_INPUT),
            type="array",
            datatype="str",
            headers=[f"col {j}" for j in range(5)],
            interactive=True,
            label="Input matrix (edit the numbers)",
            elem_id="kernel-matrix",
        )
        with gr.Row():
            matrix_input = gr.Image(
                label="Input with padding and window",
                show_label=False,
                interactive=False,
                format="png",
            )
            matrix_output = gr.Image(
                label="Output — click a cell",
                show_label=False,
                interactive=False,
                format="png",
                elem_id="kernel-matrix-output",
            )
        matrix_text = gr.Textbox(label="Output size", lines=5, interactive=False)
    layer_maps = conv_layer.build(lab, padding, stride)
    keep_figures(
        "convolution",
        [
            (result, "result", ["preset", "padding", "stride"]),
            (matrix_input, "worked example input", ["preset", "padding", "stride"]),
            (matrix_output, "worked example output", ["preset", "padding", "stride"]),
            (layer_maps, "layer output maps", []),
        ],
        {"preset": preset, "padding": padding, "stride": stride},
    )

    lab.shared["kernel_text"] = kernel_text  # the contract: other tabs write kernels here
    links.register(
        lab,
        "convolution",
        {
            "kernel": kernel_text,
            "padding": padding,
            "stride": stride,
            "grayscale": grayscale,
            "flip": flip,
            "normalise": normalise,
            "display": mode,
        },
    )
    lab.shared["kernel_display"] = mode  # e.g. "signed" for a learned filter's small values
    step_state = gr.State(("photo", -1, -1))  # (target: photo | matrix, row, col); -1: the middle

    views = Views(
        result=result, arithmetic=arithmetic, status=status, matrix_output=matrix_output,
        matrix_text=matrix_text, step_view=step_view, matrix_input=matrix_input, grid=grid,
        size=size, preset=preset, kernel_text=kernel_text, padding=padding, stride=stride,
        flip=flip, normalise=normalise, matrix=matrix, step_state=step_state,
        example_box=example_box,
    )  # fmt: skip
    photo_inputs = [lab.photo, kernel_text, padding, stride, grayscale, flip, mode, normalise]
    # The public endpoint: errors come back as gr.Error (a popup, or an exception in the client).
    shown = views.pick("result", "arithmetic")
    apply.click(
        shown.wire(guard(show_result)),
        photo_inputs,
        shown.outputs,
        api_name="apply_kernel",
        **LIGHT_EVENT,
    )
    # Every view, in ONE event: on load and whenever an input changes (the CNN tab writing
    # kernel_text too). One event, not one per view: Gradio 6's front end can re-fire change
    # events without end when several listeners share inputs that one click sets together.
    # A half-typed kernel shows its problem under the editor instead of a popup.
    live = views.pick(*LIVE_VIEWS)
    gr.on(
        None,
        live.wire(guard(refresh)),
        [step_state, lab.photo, matrix, *photo_inputs[1:]],
        live.outputs,
        api_visibility="private",
        trigger_mode="always_last",
        **LIGHT_EVENT,
    )
    # Picking or moving only changes the step state; the refresh follows it.
    result.select(pick_photo_pixel, None, step_state, api_visibility="private")
    matrix_output.select(pick_matrix_cell, None, step_state, api_visibility="private")
    for label, button in moves.items():
        button.click(
            guard(_mover(label)),
            [step_state, lab.photo, matrix, kernel_text, padding, stride, grayscale],
            step_state,
            api_visibility="private",
        )

    # The editor: preset, grid and size write the text box; the text box is the truth.
    preset.input(pick_preset, [preset, kernel_text], kernel_text, api_visibility="private")
    grid.input(grid_to_text, grid, [kernel_text, status], api_visibility="private")
    size.input(resize_text, [kernel_text, size], [kernel_text, status], api_visibility="private")
    example = views.pick(*LECTURE_SETTINGS)
    lecture.click(
        example.wire(lecture_example),
        None,
        example.outputs,
        api_visibility="private",
    )


# ---------------------------------------------------------------------------------------------
# Handlers: an engine call plus a few lines each


# What the one live event redraws (`refresh`), and what the lecture example sets.
LIVE_VIEWS = ("result", "arithmetic", "status", "matrix_output", "matrix_text", "step_view",
              "matrix_input", "grid", "size", "preset")  # fmt: skip
LECTURE_SETTINGS = ("kernel_text", "padding", "stride", "flip", "normalise", "matrix",
                    "step_state", "example_box")  # fmt: skip


def show_result(photo, kernel, padding, stride, grayscale, flip, mode, normalise=False) -> dict:
    """apply_kernel on the session's photo → the result as displayed and the output-size text.
    `kernel` is its text: rows of numbers (R, G, B blocks separated by blank lines)."""
    settings = Convolution(padding, stride, grayscale, flip, normalise)
    view = render_kernel(open_photo(photo).image, parse_kernel(kernel), settings, mode=mode)
    view.image.encoderinfo = dict(JPEG_SETTINGS)  # Pillow ≥ 11 keeps these when Gradio saves
    return {"result": view.image, "arithmetic": view.arithmetic}


def refresh(state, photo, cells, text, padding, stride, grayscale, flip, mode, normalise) -> dict:
    """Every live view: the result, the worked example, the step-through, the grid.

    Without a usable photo the worked example still works; the photo's views say what is wrong."""
    problem = photo_problem(photo)
    try:
        if problem:
            shown = {"result": None, "arithmetic": "", "status": f"⚠️ {problem}"}
        else:
            shown = show_result(photo, text, padding, stride, grayscale, flip, mode, normalise)
            shown["status"] = ""
    except LabError as error:
        shown = {"status": f"⚠️ {error}"}  # the last good result stays
    return {
        **shown,
        **show_matrix(cells, text, padding, stride, flip, normalise),
        **show_step(state, photo, cells, text, padding, stride, grayscale, flip, normalise),
        **text_to_grid(text),
    }


def show_matrix(cells, text, padding, stride, flip, normalise) -> dict:
    """The worked example: the same kernel on the small matrix, drawn with its numbers."""
    try:
        settings = Convolution(padding, stride, flip=flip, normalise=normalise)
        view = render_kernel(_matrix(cells), parse_kernel(text), settings)
    except LabError as error:
        return {"matrix_text": f"⚠️ {error}"}
    return {"matrix_output": view.image, "matrix_text": view.arithmetic}


def show_step(state, photo, cells, text, padding, stride, grayscale, flip, normalise) -> dict:
    """The selected output pixel (of the photo or the matrix) worked out, and the padded matrix."""
    target, row, col = state
    matrix = None
    try:
        kernel = parse_kernel(text)
        settings = Convolution(padding, stride, flip=flip, normalise=normalise)
        matrix = _matrix(cells)
        if target == "matrix":
            image = matrix
        else:
            image = open_photo(photo).image
            settings = Convolution(padding, stride, grayscale, flip, normalise)
        middle = row < 0 or col < 0
        step, html = render_step(
            image, kernel, None if middle else row, None if middle else col, settings
        )
    except (LabError, gr.Error) as error:
        shown = {"step_view": error_html(getattr(error, "message", error))}
        if matrix is not None:
            shown["matrix_input"] = _padded(matrix, 1, "valid", None)
        return shown
    picture = _padded(matrix, kernel.shape[-1], padding, step if target == "matrix" else None)
    return {"step_view": html, "matrix_input": picture}


def pick_photo_pixel(event: gr.SelectData):
    x, y = event.index
    return ("photo", int(y), int(x))


def pick_matrix_cell(event: gr.SelectData):
    x, y = event.index
    return ("matrix", int(y) // MATRIX_CELL, int(x) // MATRIX_CELL)


def _mover(label: str):
    move = {"←": (0, -1), "→": (0, 1), "↑": (-1, 0), "↓": (1, 0)}[label[0]]

    def step_once(state, photo, cells, text, padding, stride, grayscale):
        """One output pixel further, kept inside the output (from the middle at first)."""
        target, row, col = state
        image = _matrix(cells) if target == "matrix" else open_photo(photo).image
        pixels = image_pixels(image, grayscale=target != "matrix" and grayscale is True)
        height, width = output_size(
            *pixels.shape[:2], parse_kernel(text).shape[-1], padding, stride
        )
        row, col = (height // 2, width // 2) if row < 0 or col < 0 else (row, col)
        row = min(max(row + move[0], 0), height - 1)
        col = min(max(col + move[1], 0), width - 1)
        return (target, row, col)

    step_once.__name__ = f"step_{label.split()[1]}"
    return step_once


def pick_preset(name, text=""):
    """A preset's kernel into the text box (unless the box already holds that kernel)."""
    if name not in PRESETS:
        return gr.skip()
    try:
        if np.array_equal(parse_kernel(text), PRESETS[name]):
            return gr.skip()
    except (LabError, ValueError):
        pass
    return format_kernel(PRESETS[name])


def grid_to_text(cells):
    try:
        return format_kernel(cells_to_array(cells)), ""
    except LabError as error:
        return gr.skip(), f"⚠️ {error}"


def resize_text(text, size):
    try:
        return format_kernel(resize_kernel(parse_kernel(text), int(size[0]))), ""
    except (LabError, ValueError, TypeError) as error:
        return gr.skip(), f"⚠️ {error}"


def text_to_grid(text, cells=None) -> dict:
    """Mirror the text into the grid (unless the grid already says the same) and the size.

    The preset dropdown is left alone (the grid's label names the preset instead): it is an
    input the user sets, and the front end treats programmatic updates of it as user input.
    """
    try:
        kernel = parse_kernel(text)
    except LabError:
        return {}
    preset = preset_name(kernel)
    side = f"{kernel.shape[-1]}×{kernel.shape[-1]}"
    size = side if side in GRID_SIZES else None
    headers = offsets(kernel.shape[-1])
    if kernel.ndim == 3:
        label = f"Channel 1 of {len(kernel)} (edit a multi-channel kernel as text)"
        grid = gr.update(value=_cells(kernel[0]), headers=headers, interactive=False, label=label)
        return {"grid": grid, "size": size, "preset": "custom"}
    label = GRID_LABEL + (f" — the '{preset}' preset" if preset else "")
    try:
        same = cells is not None and np.allclose(cells_to_array(cells), kernel, rtol=1e-6)
    except (LabError, ValueError):
        same = False
    update = {"headers": headers, "interactive": True, "label": label}
    if not same:
        update["value"] = _cells(kernel)
    return {"grid": gr.update(**update), "size": size, "preset": preset or "custom"}


def lecture_example() -> dict:
    """The slide's kernel on the slide's matrix, no padding; the step starts at the first '?'."""
    return {
        "kernel_text": format_kernel(LECTURE_KERNEL),
        "padding": "valid",
        "stride": 1,
        "flip": False,
        "normalise": False,
        "matrix": _cells(LECTURE_INPUT),
        "step_state": ("matrix", 2, 0),
        "example_box": gr.Accordion(open=True),
    }


# ---------------------------------------------------------------------------------------------


def _cells(array: np.ndarray) -> list[list[str]]:
    return [format_kernel(np.atleast_2d(row)).split() for row in np.asarray(array)]


def _matrix(cells) -> np.ndarray:
    return cells_to_array(cells, what="matrix", max_side=MAX_MATRIX)


def _padded(matrix, size, padding, step):
    try:
        return draw_padded_matrix(matrix, size, padding, step)
    except LabError:
        return draw_padded_matrix(matrix, 1, "valid")
