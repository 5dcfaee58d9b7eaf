"""The projector view: a switch (and `?projector=1` in the page URL) for a lecture hall.

Larger text (≥ 20 px at 1280×720), higher contrast, secondary panels closed, and figures drawn
with larger titles, ticks and annotations — for the visitor who switched it on, and only them.
The page styles itself in the browser; the server remembers each visitor's choice per browser
session (bounded, forgotten when the page closes), and the renderers ask `visitor_style` (through
`vlmlab.render.use_style_source`) which style the visitor being answered has chosen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import gradio as gr

from vlmlab import links
from vlmlab.render import NORMAL, PROJECTOR, FigureStyle, use_style_source

PARAM = "projector"  # ?projector=1 in the page URL
MAX_VISITORS = 1000  # as many browser sessions as Gradio keeps (demo.MAX_SESSIONS)


def projector_requested(query: Mapping[str, str] | None) -> bool:
    """Whether a page's query parameters ask for the projector view (`projector=1`), read by the
    links' codec exactly as a link's other values are; anything else means the normal view."""
    if not query or not isinstance(query.get(PARAM), str):
        return False
    return links.decode({PARAM: query[PARAM]}).projector


class VisitorStyles:
    """Each browser session's projector choice: bounded (oldest forgotten first), thread-safe."""

    def __init__(self, capacity: int = MAX_VISITORS):
        self.capacity = capacity
        self._on: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    def set(self, session: str, on: bool) -> None:
        with self._lock:
            self._on[session] = bool(on)
            self._on.move_to_end(session)
            while len(self._on) > self.capacity:
                self._on.popitem(last=False)

    def get(self, session: str | None) -> bool | None:
        with self._lock:
            return self._on.get(session) if session else None

    def forget(self, session: str | None) -> None:
        with self._lock:
            self._on.pop(session, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._on)


visitors = VisitorStyles()


def _request() -> gr.Request | None:
    from gradio.context import LocalContext  # the request of the event being handled

    return LocalContext.request.get(None)


def visitor_style(request: gr.Request | None = None) -> FigureStyle | None:
    """The figure style of the visitor whose event is being handled (None outside events)."""
    request = request or _request()
    if request is None:
        return None
    session = getattr(request, "session_hash", None)
    on = visitors.get(session)
    if on is None:  # the page's own choice has not arrived yet: its URL says
        try:
            on = projector_requested(dict(request.query_params))
        except Exception:  # noqa: BLE001 - a request without a URL: the normal view
            on = False
    return PROJECTOR if on else NORMAL


# The page's side: a class on <html> that the CSS below keys on, set at once from the URL (before
# the server answers) and by the switch. In the projector view each secondary panel
# (`.lab-secondary`, open in the normal view) is closed the first time it is seen open, also in
# tabs drawn later; a visitor may open it again. A panel counts as closed once a later look finds
# it so (a click before Gradio listens does nothing). The look runs at most every 100 ms while the
# page changes (a page that never stops changing still gets it).
PAGE_JS = """
() => {
  const on = ['1', 'true', 'yes', 'on'].includes(
    (new URLSearchParams(location.search).get('projector') || '').toLowerCase());
  document.documentElement.classList.toggle('lab-projector', on);
  const closed = new WeakSet(), clicked = new WeakSet();
  window.labCloseSecondary = (all) => {
    if (!document.documentElement.classList.contains('lab-projector')) return;
    for (const panel of document.querySelectorAll('.lab-secondary')) {
      const header = panel.querySelector(':scope > .label-wrap');
      if (!header || (closed.has(panel) && !all)) continue;
      if (header.classList.contains('open')) {
        header.click();
        clicked.add(panel);
      } else if (clicked.has(panel)) {
        closed.add(panel);
      }
    }
  };
  window.labCloseSecondary(true);
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    setTimeout(() => { queued = false; window.labCloseSecondary(false); }, 100);
  }).observe(document.body, { subtree: true, childList: true, attributes: true,
                               attributeFilter: ['class'] });
}
"""

SWITCH_JS = """
(on) => {
  document.documentElement.classList.toggle('lab-projector', !!on);
  const url = new URL(location.href);
  if (on) url.searchParams.set('projector', '1'); else url.searchParams.delete('projector');
  history.replaceState(history.state, '', url);
  if (on && window.labCloseSecondary) window.labCloseSecondary(true);
  return on;
}
"""

# Text ≥ 20 px, headings larger, the subdued greys as dark as body text, stronger borders;
# in the dark theme too (Gradio's theme variables are set on :root and again on .dark, the
# <body>'s class in the dark theme, so the sizes are set on both).
PAGE_CSS = """
html.lab-projector, html.lab-projector.dark, html.lab-projector .dark {
  --text-xxs: 16px; --text-xs: 18px; --text-sm: 20px; --text-md: 22px; --text-lg: 26px;
  --text-xl: 30px; --text-xxl: 36px;
  --body-text-size: 22px; --prose-text-size: 22px; --block-label-text-size: 20px;
  --block-info-text-size: 20px; --block-title-text-size: 22px; --input-text-size: 22px;
  --checkbox-label-text-size: 22px; --section-header-text-size: 24px;
  --button-large-text-size: 24px; --button-medium-text-size: 22px; --button-small-text-size: 20px;
  font-size: 22px;
}
html.lab-projector {
  --body-text-color-subdued: var(--body-text-color);
  --block-info-text-color: var(--body-text-color);
  --block-border-color: #6b7280; --border-color-primary: #6b7280;
}
html.lab-projector.dark, html.lab-projector .dark {
  --body-text-color-subdued: var(--body-text-color);
  --block-info-text-color: var(--body-text-color);
  --block-border-color: #9ca3af; --border-color-primary: #9ca3af;
}
html.lab-projector body { font-size: 22px; }
html.lab-projector .prose, html.lab-projector .prose p, html.lab-projector .prose li,
html.lab-projector .prose td, html.lab-projector .prose th { font-size: 22px; }
html.lab-projector button[role=tab] { font-size: 22px; font-weight: 600; }
html.lab-projector #projector-switch { border: 2px solid var(--color-accent, #f97316); }
html.lab-projector .vl-step, html.lab-projector .vl-step :is(td, caption, small, .op),
html.lab-projector #pixels-spaces table { font-size: 20px !important; }
/* Compact above the tabs, so a figure starts above the fold at 1280×720: the title on one line
   without its blurb, the switch without its hint, the samples as a thin strip beside a small
   preview, and no upload zone (switch the view off to upload a photo). */
html.lab-projector #lab-intro p, html.lab-projector #projector-switch .info-text,
html.lab-projector #photo-file, html.lab-projector #photo-notes { display: none; }
html.lab-projector #lab-intro h1 { font-size: 26px; margin: 0; line-height: 1.2; }
html.lab-projector #lab-intro, html.lab-projector #projector-switch { padding-top: 2px;
  padding-bottom: 2px; min-height: 0; }
html.lab-projector #photo-samples, html.lab-projector #photo-samples .grid-wrap {
  height: 96px !important; }
html.lab-projector #photo-preview { height: 96px !important; min-height: 0; }
html.lab-projector #photo-preview [data-testid=block-label],
html.lab-projector #photo-preview .icon-button-wrapper { display: none; }
html.lab-projector #photo-preview img { max-height: 92px; object-fit: contain; }
html.lab-projector #lecture > .label-wrap { padding-top: 4px; padding-bottom: 4px; }
"""


def build_projector_switch(demo: gr.Blocks) -> tuple[gr.Checkbox, object]:
    """The "Projector view" switch. Returns it and its change event (after which the visitor's
    choice is known on the server: what redraws for it chains on that event with `.then`).
    From now on figures are drawn in the style of the visitor being answered."""
    use_style_source(visitor_style)
    switch = gr.Checkbox(
        False,
        label="Projector view",
        info="large text and figures for a hall (?projector=1)",
        elem_id="projector-switch",
        container=True,
        scale=0,
        min_width=220,
    )

    def opened(request: gr.Request) -> bool:
        on = projector_requested(dict(request.query_params))
        visitors.set(request.session_hash, on)
        return on

    def switched(on: bool, request: gr.Request) -> None:
        visitors.set(request.session_hash, bool(on))

    def closed(request: gr.Request) -> None:
        visitors.forget(request.session_hash)

    quiet = {"api_visibility": "private", "queue": False}
    demo.load(opened, None, switch, **quiet)
    changed = switch.change(switched, switch, None, js=SWITCH_JS, **quiet)
    demo.unload(closed)
    return switch, changed
