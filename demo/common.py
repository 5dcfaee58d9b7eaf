"""What every tab shares: the lab's photo, error handling, and the concurrency of model events."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from vlmlab.errors import LabError, user_message
from vlmlab.images import Intake, read_image

log = logging.getLogger("vlmlab")

# Model events share one slot per model-worker, so a lecture hall queues instead of thrashing
# the CPU; light events (pixels, kernels) may run a few at a time beside them.
MODEL_EVENT = {"concurrency_id": "model", "concurrency_limit": 1}
LIGHT_EVENT = {"concurrency_id": "light", "concurrency_limit": 4}

VIEW_BUTTONS = ["download", "fullscreen"]  # a drawn view: save it, or see it full screen

NO_PHOTO = "Please pick a sample photo or upload one first."
FAULT = "Something went wrong on the lab's side; please try again (the error was logged)."


@dataclass
class Lab:
    """The components tabs share. Tabs are built in lecture order; each adds what it offers."""

    blocks: gr.Blocks  # the whole app (its `load` event: a page opens)
    photo: gr.File  # the session's photo (a file path); every tab's events take it as input
    tabs: gr.Tabs  # select a tab with gr.Tabs(selected=<tab id>)
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. "kernel_text" from Convolution
    # The page-load event after which the photo is known (this browser's last choice restored):
    # what a tab shows as soon as a page opens chains on it, `lab.opened.then(...)`, and skips
    # when `restored` (a gr.State) is True: the photo then changed, and its change event runs.
    opened: Any = None
    restored: Any = None
    # This visitor's link (a vlmlab.links.ViewState, or None), decoded when the page opens: see
    # demo/links.py. Its `projector` field is the projector switch the link asks for.
    link: Any = None
    # The projector switch's change event: the visitor's figure style is known after it, so a
    # tab's main view redraws for it with `lab.restyled.then(...)` (see `when_shown`).
    restyled: Any = None


class Views:
    """A handler's output components, by name.

    A tab's handlers live at module level (tests call them) and return their values by name,
    `{"summary": text, "grid": picture}`; `wire(handler)` is what Gradio calls: the same values
    as `{component: value}`, the form Gradio takes (a name left out keeps its component as it
    is). `outputs` lists the components for the event, `pick(*names)` a subset.
    """

    def __init__(self, **components: gr.components.Component):
        self.components = components

    @property
    def outputs(self) -> list:
        return list(self.components.values())

    def pick(self, *names: str) -> Views:
        return Views(**{name: self.components[name] for name in names})

    def to_components(self, values: dict[str, Any]) -> dict | list:
        unknown = set(values) - set(self.components)
        if unknown:
            raise KeyError(f"no output named {sorted(unknown)}")
        if not values:  # Gradio reads an empty dict as one value, not as "change nothing"
            return [gr.skip()] * len(self.components)
        return {self.components[name]: value for name, value in values.items()}

    def wire(self, fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def wired_stream(*args, **kwargs):
                for values in fn(*args, **kwargs):
                    yield self.to_components(values)

            return wired_stream

        @functools.wraps(fn)
        def wired(*args, **kwargs):
            return self.to_components(fn(*args, **kwargs))

        return wired


def view_image(label: str, **options) -> gr.Image:
    """A drawn view (a picture from a render module): read-only PNG with the buttons to save
    it or see it full screen. `options` are gr.Image's own (elem_id, scale, show_label…)."""
    return gr.Image(
        label=label, type="pil", format="png", interactive=False, buttons=VIEW_BUTTONS, **options
    )


def open_dropdown(
    choices=None,
    *,
    api_types: tuple[dict, ...] = ({"type": "string"},),
    api_note: str = "",
    api_listed: bool = True,
    **kwargs,
) -> gr.Dropdown:
    """A dropdown that also takes values off its list (typed on the page, or sent by a script),
    described truthfully to `client.view_api()`: Gradio's own description lists only the choices.

    `api_types` are the JSON schemas accepted besides the listed choices (or instead of them,
    with `api_listed=False`); `api_note` says in words what a value may be. (A subclass of
    gr.Dropdown would do too, but Gradio writes a .pyi file beside every component class.)
    """
    dropdown = gr.Dropdown(choices, allow_custom_value=True, **kwargs)
    listed = dropdown.api_info  # Gradio's description: the choices as they are when asked

    def api_info() -> dict[str, Any]:
        schemas = [listed(), *api_types] if api_listed else list(api_types)
        return {"anyOf": schemas, "additional_description": api_note}

    dropdown.api_info = api_info  # what the app's API description reads for this component
    return dropdown


def open_photo(path: str | None) -> Intake:
    """The session's photo, decoded safely (cached per file), or a clear error if there is none."""
    if not path:
        raise gr.Error(NO_PHOTO, print_exception=False)
    if not os.path.exists(path):  # the cache cleanup (demo.DELETE_CACHE) removed an old upload
        raise gr.Error(
            "Your photo is no longer on the server (uploads are kept for two hours); "
            "please pick or upload it again.",
            print_exception=False,
        )
    return read_image(path)


def photo_problem(path: str | None) -> str | None:
    """Why the session's photo cannot be used, or None when it can. For what tabs do when the
    photo changes: the photo picker already says the problem aloud, so tabs say it in place or
    wait quietly (one message, not one per tab)."""
    try:
        open_photo(path)
    except (gr.Error, LabError) as error:
        return str(getattr(error, "message", error))
    return None


def when_shown(lab: Lab, title: str, fn: Callable, inputs: list, outputs: list, **events) -> None:
    """Run `fn` (a model tab's main view; `inputs` start with the photo) when the tab titled
    `title` is opened, and again when the photo changes while it is open: the tab shows its
    answer without a click. Hidden, or without a usable photo (the picker says why), it waits."""
    if inputs[0] is not lab.photo:
        raise ValueError("when_shown: the photo must be the first input")
    shown = gr.State(False)  # is this tab on screen?
    skip = [gr.skip()] * len(outputs)

    def waits(is_shown: bool, photo: str | None) -> bool:
        return not is_shown or photo_problem(photo) is not None

    if inspect.isgeneratorfunction(fn):

        def run(is_shown, *args, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            if waits(is_shown, args[0]):
                yield skip
                return
            yield from fn(*args, progress=progress)

    else:

        def run(is_shown, *args, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
            return skip if waits(is_shown, args[0]) else fn(*args, progress=progress)

    def on_tab(event: gr.SelectData) -> bool:
        return event.value == title

    private = {"api_visibility": "private", **events}
    # A link that opens this tab runs the same view (demo/links.py, `shown_step`), and its own
    # photo change is left to it.
    lab.shared.setdefault("when_shown", {})[title] = (shown, run, inputs, outputs, events)
    tab_id = lab.shared.get("tab_ids", {}).get(title)

    def held(link, photo) -> bool:
        from .links import holds

        return tab_id is not None and holds(link, tab_id, photo)

    if inspect.isgeneratorfunction(run):

        def follow(is_shown, link, *args, progress=gr.Progress()):  # noqa: B008
            yield from run(is_shown and not held(link, args[0]), *args, progress=progress)

    else:

        def follow(is_shown, link, *args, progress=gr.Progress()):  # noqa: B008
            return run(is_shown and not held(link, args[0]), *args, progress=progress)

    lab.tabs.select(on_tab, None, shown, api_visibility="private", **LIGHT_EVENT).then(
        run, [shown, *inputs], outputs, **private
    )
    if lab.link is None:
        lab.photo.change(run, [shown, *inputs], outputs, **private)
    else:
        lab.photo.change(follow, [shown, lab.link, *inputs], outputs, **private)
    if lab.restyled is not None:  # the projector view switched: redraw in the new style
        lab.restyled.then(run, [shown, *inputs], outputs, **private)


def guard(fn: Callable) -> Callable:
    """Turn engine errors into a one-sentence `gr.Error`; log anything else, show no traceback."""

    def explain(error: Exception) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        message = user_message(error)
        if message is None:
            log.exception("handler %s failed", fn.__name__)
            message = FAULT
        return gr.Error(message, print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def guarded_stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - every fault becomes a sentence
                raise explain(error) from None

        return guarded_stream

    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every fault becomes a sentence
            raise explain(error) from None

    return guarded


# Errors stay on screen. A failed event's sentence reaches the browser as a toast that fades
# after 10 s, and its outputs keep only red "Error" badges. This script, run once per page,
# writes that sentence into the note (`error_note()`) of the tab whose outputs failed, where it
# stays until the tab's next action (any of its components busy again). It only copies text the
# page already shows; API callers get the same sentence as the error of their call.
KEEP_ERRORS_JS = """
() => {
  const TRACKER = '[data-testid=status-tracker]';
  const told = new WeakSet();  // trackers in error whose sentence is already in a note
  const busy = new WeakSet();  // trackers showing progress now
  const failed = (t) => !!t.querySelector(':scope > .error');
  const working = (t) => !t.classList.contains('hide') && !failed(t);
  const noteOf = (el) => {
    const tab = el.closest('[id^="tab-"]');
    return tab && tab.querySelector('.block.lab-error-note .prose');
  };
  const write = (note, text) => {
    note.textContent = text;
    note.closest('.block.lab-error-note').classList.toggle('lab-error-shown', text !== '');
  };
  const tell = (text) => {
    for (const t of document.querySelectorAll(TRACKER)) {
      if (!failed(t) || told.has(t)) continue;
      told.add(t);
      // Only the tab on screen: the toast answers what the student just did there, not a red
      // badge left in another tab that no toast explained.
      const note = t.getClientRects().length ? noteOf(t) : null;
      if (note) write(note, text);
    }
  };
  const watch = () => {
    for (const t of document.querySelectorAll(TRACKER)) {
      if (!failed(t)) told.delete(t);
      if (!working(t)) { busy.delete(t); continue; }
      if (busy.has(t)) continue;
      busy.add(t);  // the tab's next action has started: its old sentence goes
      const note = noteOf(t);
      if (note && note.textContent) write(note, '');
    }
  };
  new MutationObserver((records) => {
    watch();
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1) continue;
        const texts = node.matches('[data-testid=toast-text]')
          ? [node] : node.querySelectorAll('[data-testid=toast-text]');
        for (const text of texts) {
          if (!text.classList.contains('error')) continue;
          const sentence = text.textContent.trim();
          setTimeout(() => tell(sentence), 250);  // the outputs' badges may come a moment later
        }
      }
    }
  }).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['class'],
  });
}
"""

KEEP_ERRORS_CSS = """
.block.lab-error-note:not(.lab-error-shown) { display: none !important; }
.block.lab-error-note.lab-error-shown { border-left: 4px solid var(--error-border-color, #ef4444);
  background: var(--error-background-fill, #fef2f2); padding: var(--size-2) var(--size-4); }
.block.lab-error-note .prose { color: var(--error-text-color, #b91c1c); font-size: var(--text-lg); }
"""


def error_note() -> gr.HTML:
    """The place in a tab where its last error stays until the next action (see KEEP_ERRORS_JS).
    Empty and hidden until then; the server never writes to it."""
    return gr.HTML("", elem_classes=["lab-error-note"], padding=False)


def progress_callback(progress: gr.Progress | None):
    """Adapt gr.Progress to the engine's `progress(fraction, desc=...)` callback."""
    if progress is None:
        return None
    return lambda fraction, desc=None: progress(fraction, desc=desc)
