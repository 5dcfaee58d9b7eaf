"""The Pixels tab: the image as numbers: a grayscale matrix (0–255), a C×H×W tensor, and the
same colours in other colour spaces (HSV, HSL, Lab, LUV, XYZ, CMYK), channel by channel.
"""

from __future__ import annotations

import gradio as gr

from . import links
from .common import LIGHT_EVENT, Lab, Views, guard, open_photo, photo_problem
from .figures import keep_figures
from vlmlab.pixels import (
    COLOR_SPACES,
    MAX_REGION,
    centred_region,
    convert_color_space,
    pick_region,
    pixel_in_color_spaces,
    read_pixel,
    shrink,
    tensor_facts,
)
from vlmlab.pixels.render import (
    PLANE_SIDE,
    color_table_html,
    describe_tensor,
    draw_channel_planes,
    draw_color_planes,
    draw_region_box,
    draw_region_grids,
    preview_scale,
)

TITLE = "Pixels"

INTRO = """A photo is a grid of numbers. **Click the photo** (or use the sliders) to pick a small
region and read its pixels: each one is three whole numbers from 0 to 255, red, green and blue —
a grayscale image is a single matrix of them."""


def build(lab: Lab) -> None:
    """Fill the tab (called inside its gr.Tab)."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            preview = gr.Image(
                label="Click to pick a region",
                type="pil",
                interactive=False,
                elem_id="pixels-preview",
            )
            top = gr.Slider(0, 2047, value=130, step=1, label="Region top (row)")
            left = gr.Slider(0, 2047, value=200, step=1, label="Region left (column)")
            size = gr.Slider(2, MAX_REGION, value=10, step=1, label="Region size (pixels)")
        with gr.Column(scale=3):
            grids = gr.Image(
                label="The region magnified: every pixel's value",
                show_label=False,
                type="pil",
                interactive=False,
                format="png",
                elem_id="pixels-grids",
            )
    gr.Markdown("### A colour image is a tensor: channels × height × width")
    with gr.Row():
        planes = gr.Image(
            label="The three channel planes", show_label=False, type="pil", interactive=False
        )
        facts = gr.Markdown(elem_id="pixels-facts")
    gr.Markdown("### The same colours in other colour spaces")
    with gr.Row():
        with gr.Column(scale=3):
            space = gr.Radio(list(COLOR_SPACES)[1:], value="HSV", label="Colour space")
            space_planes = gr.Image(
                label="Each channel as a plane: black = low end, white = high end",
                show_label=False,
                type="pil",
                interactive=False,
            )
            space_note = gr.Markdown()
        with gr.Column(scale=2):
            gr.Markdown("The marked pixel (middle of the region) in every space:")
            pixel_table = gr.HTML(elem_id="pixels-spaces")
    keep_figures(
        "pixels",
        [
            (preview, "photo with region", ["top", "left", "size"]),
            (grids, "pixel values", ["top", "left", "size"]),
            (planes, "channel planes", []),
            (space_planes, "colour space", ["space"]),
        ],
        {"top": top, "left": left, "size": size, "space": space},
    )

    # Public endpoints refuse a missing photo with a sentence; when a page opens or its photo
    # changes, a missing one is said in place instead (the photo picker asks for one already).
    # Everything for a photo comes from one handler, so no older answer can land after it.
    views = Views(
        planes=planes, top=top, left=left, preview=preview, grids=grids, facts=facts,
        pixel_table=pixel_table, space_planes=space_planes, space_note=space_note,
    )  # fmt: skip
    region_inputs = [lab.photo, top, left, size]
    region = views.pick(*REGION_VIEWS)
    gr.on(
        [top.change, left.change, size.change],
        region.wire(guard(show_region)),
        region_inputs,
        region.outputs,
        trigger_mode="always_last",
        api_name="pixel_region",
        **LIGHT_EVENT,
    )
    colours = views.pick(*SPACE_VIEWS)
    space.change(
        colours.wire(guard(show_color_space)),
        [lab.photo, space],
        colours.outputs,
        trigger_mode="always_last",
        api_name="color_space",
        **LIGHT_EVENT,
    )
    private = {"api_visibility": "private", "trigger_mode": "always_last", **LIGHT_EVENT}
    # A new photo: the region moves to its middle. A page opening keeps the sliders, unless it
    # brought back this browser's own photo (then the photo's change does it).
    lab.photo.change(
        views.wire(guard(new_photo)),
        [*region_inputs, space, lab.link],
        views.outputs,
        **private,
    )
    if lab.opened is not None:
        lab.opened.then(
            views.wire(guard(page_opened)),
            [lab.restored, *region_inputs, space, lab.link],
            views.outputs,
            **private,
        )
    links.register(lab, "pixels", {"top": top, "left": left, "size": size, "space": space})
    picked = views.pick("top", "left")
    preview.select(
        picked.wire(guard(pick_at)), [lab.photo, size], picked.outputs, api_visibility="private"
    )


REGION_VIEWS = ("preview", "grids", "facts", "pixel_table")
SPACE_VIEWS = ("space_planes", "space_note")


def show_region(photo, top, left, size) -> dict:
    """The preview with the region outlined, the magnified grids, the tensor facts, the pixel."""
    image = open_photo(photo).image
    region = pick_region(image, top, left, size)
    h, w = region.size
    row, col = region.top + h // 2, region.left + w // 2  # the marked pixel
    return {
        "preview": draw_region_box(image, region),
        "grids": draw_region_grids(region, mark=(row, col)),
        "facts": describe_tensor(tensor_facts(image, row, col)),
        "pixel_table": color_table_html(pixel_in_color_spaces(read_pixel(image, row, col).rgb)),
    }


def photo_views(photo, top, left, size, space, *, centre: bool) -> dict:
    """Everything the tab shows for a photo: the channel planes, the region (in the middle of
    the photo when `centre`, else where the sliders are, kept inside it) and the colour space.
    A missing or unreadable photo is said in place."""
    problem = photo_problem(photo)
    if problem:
        cleared = {"planes": None, "preview": None, "grids": None, "pixel_table": ""}
        return {**cleared, "facts": f"**{problem}**", "space_planes": None, "space_note": ""}
    image = open_photo(photo).image
    if centre:
        region = centred_region(image, size)
    else:
        region = pick_region(image, top, left, size)
    bottom, right = image.height - 1, image.width - 1
    return {
        "planes": draw_channel_planes(image),
        "top": gr.Slider(maximum=bottom, value=region.top),
        "left": gr.Slider(maximum=right, value=region.left),
        **show_region(photo, region.top, region.left, size),
        **show_color_space(photo, space),
    }


def new_photo(photo, top, left, size, space, link=None) -> dict:
    """A new photo: the region moves to its middle, unless the page's link placed it."""
    placed = links.linked_values(link, "pixels", photo, top=top, left=left, size=size, space=space)
    if placed is not None:
        return photo_views(photo, **placed, centre=False)
    return photo_views(photo, top, left, size, space, centre=True)


def page_opened(restored, photo, top, left, size, space, link=None) -> dict:
    """A page opens: its photo's views, the sliders kept (unless a link placed them); nothing
    when the page brought back this browser's photo (its change event redraws)."""
    if restored:
        return {}
    placed = links.linked_values(link, "pixels", photo, top=top, left=left, size=size, space=space)
    return photo_views(photo, **(placed or dict(top=top, left=left, size=size, space=space)),
                       centre=False)


def show_color_space(photo, space) -> dict:
    view = convert_color_space(shrink(open_photo(photo).image, PLANE_SIDE), space)
    note = (
        f"Computed with {view.library}. Black is the low end and white the high end of each "
        "channel's range over all sRGB colours."
    )
    return {"space_planes": draw_color_planes(view), "space_note": note}


def pick_at(photo, size, event: gr.SelectData) -> dict:
    """A click on the preview → the region's top-left, so the region is centred on the click."""
    image = open_photo(photo).image
    scale = preview_scale(image.size)
    x, y = event.index
    region = pick_region(
        image, int(y * scale) - int(size) // 2, int(x * scale) - int(size) // 2, int(size)
    )
    return {"top": region.top, "left": region.left}
