"""Links that restore a view, in the app: each tab registers its controls (`register`), gets a
"Copy link to this view" row, and a page opened with a link (`?tab=cnn&sample=coffee&…`, checked
by `vlmlab.links`) puts that visitor's controls, photo and tab in place and computes the result
for them alone. The lecture path (`build_lecture`) drives the same mechanism one step at a time.

The decoded link of this visitor is `Lab.link` (a gr.State holding a `vlmlab.links.ViewState`,
set by the page-load event `Lab.opened`); `ViewState.projector` is the projector switch's value.
"""

from __future__ import annotations

import functools
import hashlib
import html
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr

from .common import LIGHT_EVENT, MODEL_EVENT, Lab, guard
from vlmlab import lecture, links
from vlmlab.images import sample_files
from vlmlab.lecture.render import FIGURES
from vlmlab.render import figure_to_image

# The copy button's second step, in the browser: the page's address with the view's query, on
# the clipboard and in the box (the projector switch of the address bar travels along).
COPY_JS = """
(query) => {
  if (!query) return query;
  const here = new URL(window.location.href);
  if (here.searchParams.get('projector') === '1' && !query.includes('projector=')) {
    query += '&projector=1';
  }
  const url = here.origin + here.pathname + '?' + query;
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}
"""

# The lecture step in the address bar, without a reload: a lecturer can go back to it.
STEP_URL_JS = """
(step) => {
  const here = new URL(window.location.href);
  const projector = here.searchParams.get('projector');
  here.search = '';
  if (step) here.searchParams.set('step', step);
  if (projector) here.searchParams.set('projector', projector);  // the hall's view stays on
  window.history.replaceState(null, '', here.toString());
  return step;
}
"""


@dataclass
class Registration:
    """A tab's part in links: its controls by link field, and how its result is computed."""

    tab: str
    controls: dict[str, Any]  # field → component, or a tuple of components set together
    adapt: dict[str, Callable] = field(default_factory=dict)  # field → fn(value, settings)
    shows: list[tuple[Callable, list, list, dict]] = field(default_factory=list)
    trigger: Any = None  # a gr.State bumped when a link opens this tab
    row: Any = None  # (button, textbox, note) of the tab's copy row


def _registry(lab: Lab) -> dict[str, Registration]:
    return lab.shared.setdefault("links", {})


def copy_row(lab: Lab, tab: str) -> None:
    """The "Copy link to this view" row at the top of a tab (before its controls exist); the
    tab's `register` call wires it."""
    with gr.Row(equal_height=True, elem_classes=["lab-link-row"]):
        button = gr.Button(
            "Copy link to this view", size="sm", scale=0, min_width=200,
            elem_id=f"copy-link-{tab}",
        )
        box = gr.Textbox(
            show_label=False,
            placeholder="The link appears here (and on your clipboard)",
            interactive=False,
            max_lines=1,
            scale=4,
            elem_id=f"link-{tab}",
        )
        note = gr.Markdown(elem_id=f"link-note-{tab}")
    _registry(lab)[tab] = Registration(tab, {}, row=(button, box, note))


def register(lab: Lab, tab: str, controls: dict[str, Any], *shows, adapt=None) -> None:
    """Register a tab's controls (link field → component) and the steps that compute its result
    when a link opens it: `(fn, inputs, outputs)` or `(fn, inputs, outputs, events)`; `fn` is
    called as `fn(view, *inputs)` with the link's `ViewState`. `adapt` maps a field to
    `fn(value, settings)` → the control's update (say, a dropdown's choices with its value)."""
    entry = _registry(lab).setdefault(tab, Registration(tab, {}))
    entry.controls = controls
    entry.adapt = dict(adapt or {})
    entry.shows = [(s[0], s[1], s[2], s[3] if len(s) > 3 else {}) for s in shows]
    if entry.row is not None:
        button, box, note = entry.row
        names = list(controls)
        readers = [_first(controls[name]) for name in names]

        def make_link(photo, *values):
            state, notes = view_from_controls(tab, photo, dict(zip(names, values, strict=True)))
            return links.encode(state), _markdown(notes)

        button.click(
            make_link, [lab.photo, *readers], [box, note], api_visibility="private",
            **LIGHT_EVENT,
        ).then(None, box, box, js=COPY_JS, api_visibility="private")


def _first(component):
    return component[0] if isinstance(component, tuple) else component


def _all(component) -> tuple:
    return component if isinstance(component, tuple) else (component,)


def view_from_controls(tab: str, photo: str | None, values: dict) -> tuple[links.ViewState, list]:
    """The view the controls show now, on a sample (by name) or an upload (not in links)."""
    sample = sample_name(photo)
    upload = photo is not None and not sample
    return links.view_from_values(tab, sample, values, upload=upload)


def sample_name(photo: str | None) -> str | None:
    """The sample a photo path is (Gradio keeps its own copy of a sample in its cache), or
    None: an upload, or no photo."""
    if not photo:
        return None
    path = Path(photo)
    sample = sample_files().get(path.stem)
    if sample is None:
        return None
    try:
        if str(path) == str(sample) or _digest(str(path)) == _digest(str(sample)):
            return path.stem
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=64)
def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def same_photo(one: str | None, other: str | None) -> bool:
    return one == other or (sample_name(one) is not None and sample_name(one) == sample_name(other))


def _markdown(notes) -> str:
    """Notes as inert text: escaped, and no Markdown of the link's own making."""
    text = " ".join(notes)
    text = html.escape(text, quote=False)
    for char in "\\`*_[]#|":
        text = text.replace(char, "\\" + char)
    return text


def released(view):
    """The link once the visitor picks a photo of their own: only its page switches remain."""
    if isinstance(view, links.ViewState):
        return links.ViewState(projector=view.projector)
    return None


def holds(view, tab: str, photo: str | None) -> bool:
    """Whether the link still holds `tab`'s view on this photo (a tab then does not redo its
    view for the link's own photo change: the link's steps do it)."""
    return linked(view, tab) is not None and same_photo(linked_photo(view), photo)


def linked(view, tab: str):
    """The settings a visitor's link gives `tab`, or None."""
    if isinstance(view, links.ViewState) and view.tab == tab:
        return view.settings
    return None


def link_for_load(request: gr.Request | None) -> links.ViewState | None:
    """The visitor's link, decoded (None without one)."""
    params = getattr(request, "query_params", None)
    if not params:
        return None
    view = links.decode(params)
    if view.tab == "lecture":
        view = replace(view, tab=None)
    if view.step is not None and view.tab is None:
        step = lecture.STEPS[view.step - 1].view()
        view = replace(step, step=view.step, projector=view.projector, notes=view.notes)
    return view


def linked_photo(view) -> str | None:
    """The sample a link opens on: the one it names, or the default when it names a tab only
    (a link made on an upload)."""
    if not isinstance(view, links.ViewState) or view.tab is None and view.sample is None:
        return None
    from .photo import DEFAULT_SAMPLE

    return str(sample_files()[view.sample or DEFAULT_SAMPLE])


def install(lab: Lab, tab_ids: tuple[str, ...]) -> tuple[list, list, Callable]:
    """Wire links for every registered tab: returns the inputs and outputs of `put`, the function
    that puts a `ViewState` in place (for the page load and the lecture path)."""
    registry = _registry(lab)
    entries = [registry[t] for t in tab_ids if t in registry]
    for entry in entries:
        entry.trigger = gr.State(0)
        chain = None
        for fn, inputs, outputs, events in entry.shows:
            run = _only_linked(fn, outputs)
            options = {"api_visibility": "private", **(events or MODEL_EVENT)}
            if chain is None:
                chain = entry.trigger.change(run, [lab.link, *inputs], outputs, **options)
            else:
                chain = chain.then(run, [lab.link, *inputs], outputs, **options)
    notes = lab.shared["link_notes"]
    controls = [(entry, name, c) for entry in entries for name, comps in entry.controls.items()
                for c in _all(comps)]
    outputs = [lab.tabs, lab.photo, lab.link, notes, *[e.trigger for e in entries]]
    outputs += [component for _, _, component in controls]

    def put(view, photo, *counters):
        """Everything a view sets, as one update."""
        if not isinstance(view, links.ViewState):
            return [gr.skip()] * len(outputs)
        target = linked_photo(view)
        tab_ids_now = [e.tab for e in entries]
        result = [
            gr.Tabs(selected=view.tab) if view.tab in tab_ids_now else gr.skip(),
            target if target and not same_photo(target, photo) else gr.skip(),
            view,
            _markdown(view.notes),
            *[
                counter + 1 if entry.tab == view.tab else gr.skip()
                for entry, counter in zip(entries, counters, strict=True)
            ],
        ]
        for entry, name, _ in controls:
            settings = linked(view, entry.tab)
            value = getattr(settings, name, None) if settings is not None else None
            if value is not None and name in entry.adapt:
                value = entry.adapt[name](value, settings)
            result.append(gr.skip() if value is None else value)
        return result

    inputs = [lab.link, lab.photo, *[e.trigger for e in entries]]
    return inputs, outputs, put


def _only_linked(fn, outputs):
    """`fn(view, *inputs, progress=…)` for a visitor with a link; a no-op without one."""
    if inspect.isgeneratorfunction(fn):

        def run(view, *args, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            if not isinstance(view, links.ViewState):
                yield [gr.skip()] * len(outputs)
                return
            yield from fn(view, *args, progress=progress)

    else:

        def run(view, *args, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            if not isinstance(view, links.ViewState):
                return [gr.skip()] * len(outputs)
            return fn(view, *args, progress=progress)

    run.__name__ = getattr(fn, "__name__", "show_linked")
    return run


def shown_step(lab: Lab, title: str) -> tuple:
    """The view a tab shows when it is opened (its `when_shown`), as a step for `register`:
    run as if the tab had been clicked, and the tab then counts as on screen."""
    shown, run, inputs, outputs, events = lab.shared["when_shown"][title]

    def and_shown(update):  # the view's update ({component: value}, or values in order)
        return {**update, shown: True} if isinstance(update, dict) else [*update, True]

    if inspect.isgeneratorfunction(run):

        def show(view, *args, progress=None):
            for update in run(True, *args, progress=progress):
                yield and_shown(update)

    else:

        def show(view, *args, progress=None):
            return and_shown(run(True, *args, progress=progress))

    return show, inputs, [*outputs, shown], events


def build_lecture() -> dict:
    """The lecture path's panel (above the tabs): the step's title, text and figure, with
    Previous and Next. Wired by `wire_lecture` once the tabs exist."""
    with gr.Accordion("Lecture path: the slides in order", open=False, elem_id="lecture") as box:
        with gr.Row(equal_height=True):
            back = gr.Button("← Previous", size="sm", scale=0, min_width=120,
                             elem_id="lecture-previous")
            step = gr.Number(0, precision=0, minimum=0, maximum=len(lecture.STEPS),
                             label=f"Step (1–{len(lecture.STEPS)})", scale=0, min_width=120,
                             elem_id="lecture-step")
            forward = gr.Button("Next →", size="sm", scale=0, min_width=120,
                                elem_id="lecture-next", variant="primary")
        text = gr.Markdown(
            "Walk through the lecture: **Next** opens each slide's tab with its setup.",
            elem_id="lecture-text",
        )
        figure = gr.Image(visible=False, interactive=False, show_label=False, format="png",
                          elem_id="lecture-figure")
        caption = gr.Markdown(visible=False, elem_id="lecture-caption")
        with gr.Row(visible=False, elem_id="lecture-keep") as keep:
            save = gr.Button("Save this figure (PNG at 2×, SVG)", size="sm", scale=0,
                             min_width=200, elem_id="lecture-save")
            files = gr.File(label="The figure", file_count="multiple", interactive=False,
                            elem_id="lecture-files")
    save.click(guard(save_step_figure), [step, figure], files, api_visibility="private",
               **LIGHT_EVENT)
    return {"box": box, "back": back, "step": step, "forward": forward, "text": text,
            "figure": figure, "caption": caption, "keep": keep}


def save_step_figure(number, shown) -> list[str]:
    """The step's cited figure as shown, kept as a PNG at 2× and an SVG with its sources."""
    from vlmlab import export
    from vlmlab.lecture.render import kept_figure

    count = len(lecture.STEPS)
    name = lecture.STEPS[int(number) - 1].figure if number and 1 <= number <= count else None
    if name is None or shown is None:
        raise gr.Error("This step has no figure to save.", print_exception=False)
    from gradio.utils import get_upload_folder  # where every component keeps its files

    folder = Path(get_upload_folder()) / "figures" / uuid.uuid4().hex
    paths, _ = export.save_view_figures("lecture", [kept_figure(name, shown)], {}, folder)
    return [str(path) for path in paths]


def step_text(number: int) -> str:
    step = lecture.STEPS[number - 1]
    return f"### {number}. {step.title}\n{step.text}"


def step_figure(number: int):
    name = lecture.STEPS[number - 1].figure
    if name is None:
        return gr.Image(value=None, visible=False), gr.Markdown(visible=False), gr.Row(visible=False)
    draw, caption = FIGURES[name]
    return (gr.Image(value=figure_to_image(draw()), visible=True),
            gr.Markdown(f"_{caption}_", visible=True), gr.Row(visible=True))


def wire(lab: Lab, tab_ids: tuple[str, ...], panel: dict) -> None:
    """Links on page load, and the lecture path's Previous, Next and step box."""
    inputs, outputs, put = install(lab, tab_ids)
    step_outputs = [panel["step"], panel["text"], panel["figure"], panel["caption"], panel["keep"],
                    panel["box"]]

    def on_load(view, photo, *counters):
        """A visitor's link (decoded in the photo picker's load): the view and the step."""
        if not isinstance(view, links.ViewState):
            return [gr.skip()] * (len(outputs) + len(step_outputs))
        panel_update = [gr.skip()] * len(step_outputs)
        if view.step is not None:
            panel_update = [view.step, step_text(view.step), *step_figure(view.step),
                            gr.Accordion(open=True)]
        return [*put(view, photo, *counters), *panel_update]

    lab.opened.then(on_load, inputs, [*outputs, *step_outputs], api_visibility="private",
                    **LIGHT_EVENT)

    def go(number, photo, *counters):
        number = min(max(int(number or 0), 1), len(lecture.STEPS))
        step = lecture.STEPS[number - 1]
        view = replace(step.view(), step=number)
        return [*put(view, photo, *counters), number, step_text(number), *step_figure(number),
                gr.skip()]

    def moved(delta):
        def move(number, photo, *counters):
            return go((number or 0) + delta, photo, *counters)

        return move

    step_inputs = [panel["step"], lab.photo, *inputs[2:]]
    every = [*outputs, *step_outputs]
    private = {"api_visibility": "private", **LIGHT_EVENT}
    for trigger, fn in ((panel["forward"].click, moved(1)), (panel["back"].click, moved(-1)),
                        (panel["step"].submit, moved(0))):
        trigger(guard(fn), step_inputs, every, **private).then(
            None, panel["step"], panel["step"], js=STEP_URL_JS, api_visibility="private"
        )


def settings_of(view, tab: str):
    """`linked` for show steps: the link's settings for `tab` (a *View with None fields when
    the link gives none)."""
    settings = linked(view, tab)
    if settings is None:
        settings = links.TAB_VIEWS[tab]()
    return settings




def linked_values(view, tab: str, photo: str | None, **current) -> dict | None:
    """`current` control values with the link's values for `tab` put in, while the photo is the
    link's own (for handlers that reset controls when the photo changes); None otherwise."""
    settings = linked(view, tab)
    if settings is None or not same_photo(linked_photo(view), photo):
        return None
    return {
        name: value if getattr(settings, name, None) is None else getattr(settings, name)
        for name, value in current.items()
    }
