"""The Gradio face of vlmlab: one module per tab, assembled by `build_demo()`."""

from __future__ import annotations

import gradio as gr

from . import (
    captioning_tab,
    links,
    clip_tab,
    cnn_tab,
    contrastive_tab,
    kernels_tab,
    pixels_tab,
    vit_tab,
    vqa_tab,
)
from .admission import install as install_admission
from .admission import wait_budget_from_env
from .cache_writes import install as install_cache_writes
from .common import KEEP_ERRORS_CSS, KEEP_ERRORS_JS, Lab, error_note
from .photo import build_photo_picker
from .projector import PAGE_CSS, PAGE_JS, build_projector_switch

# Lecture order; the id is what gr.Tabs(selected=...) takes.
TABS = (
    ("pixels", pixels_tab),
    ("convolution", kernels_tab),
    ("cnn", cnn_tab),
    ("vit", vit_tab),
    ("contrastive", contrastive_tab),
    ("clip", clip_tab),
    ("captioning", captioning_tab),
    ("vqa", vqa_tab),
)

# The hard ceiling of waiting events (memory), far above a lecture hall: below it, a request is
# admitted when its expected wait fits the wait budget (demo/admission.py, --wait-budget).
MAX_QUEUE = 1000
MAX_UPLOAD = "20mb"
# Gradio keeps a copy of the app's config per browser session (about 0.5 MB for this app), up to
# this many sessions: a lecture hall with reloads fits; an endless stream of new sessions does not
# grow memory past it (Gradio's default, 10 000, would allow ~5 GB).
MAX_SESSIONS = 1000
# Uploads and results in Gradio's cache: every 30 min, delete those older than 2 h (a lecture).
DELETE_CACHE = (1800, 7200)

INTRO = """# vlmlab — an interactive lab for vision-language models
From pixels and convolution kernels, through CNN feature maps and Vision Transformer attention,
to CLIP zero-shot, captioning and visual question answering — on your own photo."""


def build_demo(only: tuple[str, ...] | None = None, wait_budget: float | None = None) -> gr.Blocks:
    """The whole app: the photo picker above the tabs, then one tab per topic.

    `only` names the tab ids to build (a test of one topic launches just its tabs);
    `wait_budget` is the longest expected wait (s) a request is admitted to (default: the
    VLMLAB_WAIT_BUDGET environment variable, else 30 s).
    """
    install_cache_writes()  # pictures reach every browser whole (demo/cache_writes.py)
    with gr.Blocks(title="vlmlab", delete_cache=DELETE_CACHE) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(INTRO, elem_id="lab-intro")
            _, restyled = build_projector_switch(demo)
        photo, opened, restored, link = build_photo_picker(demo)
        lecture_panel = links.build_lecture()
        link_notes = gr.Markdown(elem_id="link-notes")  # what a link asked for and did not get
        built = tuple(tab_id for tab_id, _ in TABS if only is None or tab_id in only)
        with gr.Tabs() as tabs:
            lab = Lab(
                blocks=demo, photo=photo, tabs=tabs, opened=opened, restored=restored, link=link,
                restyled=restyled,
            )
            lab.shared["link_notes"] = link_notes
            lab.shared["tab_ids"] = {module.TITLE: tab_id for tab_id, module in TABS}
            for tab_id, module in TABS:
                if tab_id not in built:
                    continue
                with gr.Tab(module.TITLE, id=tab_id, elem_id=f"tab-{tab_id}"):
                    error_note()  # why the tab could not answer, until its next action
                    links.copy_row(lab, tab_id)
                    module.build(lab)
        links.wire(lab, built, lecture_panel)
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=1)
    install_admission(demo, wait_budget or wait_budget_from_env())
    return demo


def launch_options(
    *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **extra
) -> dict:
    """Safe `launch()` settings: bounded uploads, no extra file access, share only if asked."""
    return dict(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_UPLOAD,
        state_session_capacity=MAX_SESSIONS,
        allowed_paths=[],
        enable_monitoring=False,
        show_error=False,
        js=f"() => {{ ({KEEP_ERRORS_JS})(); ({PAGE_JS})(); }}",
        css=KEEP_ERRORS_CSS + PAGE_CSS,
        **extra,
    )
