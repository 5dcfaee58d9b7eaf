"""Links that restore a view (as TensorFlow Playground keeps its state in the URL): a tab's setup
as a query string, `?tab=cnn&sample=coffee&model=resnet18&layer=layer3&channel=12`, and back.

`decode(query)` never raises: hard caps (`MAX_QUERY_CHARS`, `MAX_PARAMS`, `MAX_VALUE_CHARS`) apply
before any parsing, every value goes through the same checks as the control that shows it, and
what is unknown, malformed or refused is left at its default with a short note in
`ViewState.notes` (plain text that never repeats the value). Links name a sample photo, never an
upload. `ViewState.projector` (boolean, `projector=1`) is carried through untouched for the
projector view; `ViewState.step` is the lecture step (1-based, see `vlmlab.lecture`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import quote, unquote_plus

from . import checks
from .errors import LabError

MAX_QUERY_CHARS = 20_000  # a link longer than this is cut (at a parameter's end) before parsing
MAX_PARAMS = 40  # parameters read; the rest are ignored with a note
MAX_VALUE_CHARS = 4_000  # a longer value is ignored (a 15×15×3 kernel as text is ~2 000)

UPLOAD_NOTE = (
    "Your own photo is not in the link: links name a sample photo, so this one opens on the "
    "default sample."
)


class LinkError(LabError):
    """A value in a link that its control would refuse."""


def _text(value: str) -> str:
    return value


def _whole(low: int, high: int, what: str = "value") -> Callable[[str], int]:
    return lambda value: checks.whole_number(value, what, low, high, text=True, error=LinkError)


def _real(low: float, high: float, what: str = "value") -> Callable[[str], float]:
    return lambda value: checks.finite_number(value, what, low, high, text=True, error=LinkError)


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise LinkError("A switch in a link is 1 or 0.")


def _one_of(options: Callable[[], tuple[str, ...]], what: str = "value") -> Callable[[str], str]:
    return lambda value: checks.choice(value, what, options(), error=LinkError)


def _model(topic: str) -> Callable[[str], str]:
    """A model the registry offers for `topic` (a link never fetches a model by name)."""

    def parse(value: str) -> str:
        from .models import choices

        if value not in choices(topic):
            raise LinkError("not a model the lab offers here")
        return value

    return parse


def _kernel(value: str) -> str:
    """Kernel text, checked as the Convolution tab's text box checks it (finite numbers, square,
    odd size)."""
    from .kernels import parse_kernel

    try:
        parse_kernel(value)
    except LabError as error:
        raise LinkError(str(error)) from None
    return value


def _padding(value: str) -> str:
    from .kernels import PADDINGS

    return _one_of(lambda: PADDINGS)(value)


def _display(value: str) -> str:
    from .kernels import DISPLAYS

    return _one_of(lambda: DISPLAYS)(value)


def _color_space(value: str) -> str:
    from .pixels import COLOR_SPACES

    return _one_of(lambda: tuple(COLOR_SPACES)[1:])(value)


def _decoding(value: str) -> str:
    from .captioning import DECODINGS

    return _one_of(lambda: DECODINGS)(value)


def _head(value: str) -> str:
    from .vit import MEAN

    return value if value == MEAN else str(_whole(1, 64)(value))


def _query(value: str) -> str:
    from .vit import CLS

    return CLS if value.upper() == CLS else str(_whole(1, 100_000)(value))


def _labels(value: str) -> str:
    from .clip import MAX_LABELS

    names = [part for part in re.split(r"[\n,]", value) if part.strip()]
    if not names or len(names) > MAX_LABELS:
        raise LinkError(f"not 1 to {MAX_LABELS} labels")
    return value


def _templates(value: str) -> str:
    if "{}" not in value:
        raise LinkError("a template needs {} where the label goes")
    return value


def _cnn_layer(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.]{1,80}", value):
        raise LinkError("not a layer name")
    return value


def _contrastive_lr(value: str) -> float:
    from .contrastive import check_settings

    rate = _real(0.0, 1000.0)(value)
    try:
        check_settings(steps=1, batch_size=2, lr=rate, seed=0, every=1)
    except LabError as error:
        raise LinkError(str(error)) from None
    return rate


# Each tab's setup: its fields are the controls' public names (the API vocabulary); None leaves
# a control as the page builds it. PARSE maps a field to its check (a link's text → value).


@dataclass(frozen=True)
class PixelsView:
    top: int | None = None
    left: int | None = None
    size: int | None = None
    space: str | None = None

    PARSE = {
        "top": _whole(0, 100_000),
        "left": _whole(0, 100_000),
        "size": _whole(2, 16),
        "space": _color_space,
    }


@dataclass(frozen=True)
class ConvolutionView:
    kernel: str | None = None
    padding: str | None = None
    stride: int | None = None
    grayscale: bool | None = None
    flip: bool | None = None
    normalise: bool | None = None
    display: str | None = None

    PARSE = {
        "kernel": _kernel,
        "padding": _padding,
        "stride": _whole(1, 8),
        "grayscale": _flag,
        "flip": _flag,
        "normalise": _flag,
        "display": _display,
    }


@dataclass(frozen=True)
class CNNView:
    model: str | None = None
    layer: str | None = None
    channel: int | None = None
    top_k: int | None = None

    PARSE = {
        "model": _model("cnn"),
        "layer": _cnn_layer,
        "channel": _whole(0, 100_000),
        "top_k": _whole(1, 1000),
    }


@dataclass(frozen=True)
class ViTView:
    model: str | None = None
    layer: int | None = None
    head: str | None = None
    query: str | None = None

    PARSE = {"model": _model("vit"), "layer": _whole(1, 64), "head": _head, "query": _query}


@dataclass(frozen=True)
class ContrastiveView:
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    learn_temperature: bool | None = None

    PARSE = {
        "steps": _whole(1, 3000),
        "batch_size": _whole(2, 256),
        "lr": _contrastive_lr,
        "seed": _whole(0, 999_999),
        "learn_temperature": _flag,
    }


@dataclass(frozen=True)
class CLIPView:
    model: str | None = None
    labels: str | None = None
    templates: str | None = None
    other_model: str | None = None  # the second CLIP of the side-by-side pair

    PARSE = {
        "model": _model("clip"),
        "labels": _labels,
        "templates": _templates,
        "other_model": _model("clip"),
    }


@dataclass(frozen=True)
class CaptioningView:
    model: str | None = None
    decoding: str | None = None
    num_beams: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None

    PARSE = {
        "model": _model("captioning"),
        "decoding": _decoding,
        "num_beams": _whole(2, 8),  # beam search: 2 or more (greedy is 1)
        "temperature": _real(0.1, 2.0),
        "top_p": _real(0.05, 1.0),
        "max_new_tokens": _whole(1, 60),
    }


@dataclass(frozen=True)
class VQAView:
    model: str | None = None
    question: str | None = None
    top_k: int | None = None

    PARSE = {"model": _model("vqa"), "question": _text, "top_k": _whole(1, 10)}


# Tab ids as the app names them (demo.TABS), in lecture order, with their setups.
TAB_VIEWS: dict[str, type] = {
    "pixels": PixelsView,
    "convolution": ConvolutionView,
    "cnn": CNNView,
    "vit": ViTView,
    "contrastive": ContrastiveView,
    "clip": CLIPView,
    "captioning": CaptioningView,
    "vqa": VQAView,
}
COMMON = ("tab", "sample", "projector", "step")


def sample_names() -> tuple[str, ...]:
    from .images import sample_files

    return tuple(sample_files())


@dataclass(frozen=True)
class ViewState:
    """One view of the lab: the tab, the sample photo, the tab's setup, and the page's switches.

    `projector` is the projector view's switch (`?projector=1`): links only carry it; the
    page decides what it looks like. `notes` say what a link asked for that was not taken.
    """

    tab: str | None = None
    sample: str | None = None
    settings: object | None = None  # the tab's *View, or None
    projector: bool = False
    step: int | None = None  # the lecture step, 1-based
    upload: bool = False  # made on an uploaded photo (not in the link)
    notes: tuple[str, ...] = field(default_factory=tuple)


def view_state(tab: str, sample: str | None = None, *, upload: bool = False,
               projector: bool = False, step: int | None = None, **settings) -> ViewState:
    """A view from plain values, each checked as in a link (bad ones raise `LinkError`)."""
    if tab not in TAB_VIEWS:
        raise LinkError(f"There is no tab {tab!r}; choose one of: {', '.join(TAB_VIEWS)}.")
    kind = TAB_VIEWS[tab]
    values = {}
    for name, value in settings.items():
        if value is None:
            continue
        if name not in kind.PARSE:
            raise LinkError(f"The {tab} tab has no setting {name!r}.")
        try:
            values[name] = kind.PARSE[name](_as_text(value))
        except LinkError as error:
            raise LinkError(f"The {name} in this view is {error}.") from None
    if sample is not None and sample not in sample_names():
        raise LinkError(f"There is no sample photo {sample!r}.")
    return ViewState(tab, sample, kind(**values), projector, step, upload)


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def encode(state: ViewState) -> str:
    """The query string (without '?') that `decode` turns back into `state`."""
    pairs: list[tuple[str, str]] = []
    if state.tab:
        pairs.append(("tab", state.tab))
    if state.sample and not state.upload:
        pairs.append(("sample", state.sample))
    if state.settings is not None:
        for item in fields(state.settings):
            value = getattr(state.settings, item.name)
            if value is not None:
                pairs.append((item.name, _as_text(value)))
    if state.step is not None:
        pairs.append(("step", str(state.step)))
    if state.projector:
        pairs.append(("projector", "1"))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def view_from_values(tab: str, sample: str | None, values: Mapping, *, upload: bool = False
                     ) -> tuple[ViewState, list[str]]:
    """The view controls show now (the app's copy button, a widget's `link()`); a value its
    check refuses (say, half typed) is left out, with a note."""
    kind = TAB_VIEWS[tab]
    taken, notes = {}, []
    for name, value in values.items():
        if value is None or value == "":
            continue
        try:
            taken[name] = kind.PARSE[name](_as_text(value))
        except LabError:
            notes.append(f"The {name.replace('_', ' ')} is left out: it is not valid as it is.")
    state = ViewState(tab, sample, kind(**taken), upload=upload)
    return state, [*link_notes(state), *notes]


def link_notes(state: ViewState) -> tuple[str, ...]:
    """What to tell the person copying a link of `state`."""
    return (UPLOAD_NOTE,) if state.upload else ()


def _named(name: str) -> str:
    """A parameter's name as a note may repeat it: plain lower-case words only."""
    return f"'{name}'" if re.fullmatch(r"[a-z_]{1,24}", name) else "a parameter"


def _split(query: str, notes: list[str]) -> list[tuple[str, str]]:
    """The query's parameters, capped before anything is decoded."""
    if query.startswith("?"):
        query = query[1:]
    if len(query) > MAX_QUERY_CHARS:
        query = query[:MAX_QUERY_CHARS].rsplit("&", 1)[0]
        notes.append("The link was too long; only its beginning was read.")
    pieces = query.split("&", MAX_PARAMS)
    if len(pieces) > MAX_PARAMS:
        pieces = pieces[:MAX_PARAMS]
        notes.append(f"The link has more than {MAX_PARAMS} parameters; the rest were ignored.")
    pairs = []
    for piece in pieces:
        if not piece:
            continue
        key, _, value = piece.partition("=")
        if len(value) > 3 * MAX_VALUE_CHARS:  # percent-escaped: at most three characters each
            notes.append(f"The value of {_named(unquote_plus(key[:40]))} is too long; ignored.")
            continue
        pairs.append((unquote_plus(key[:40]), unquote_plus(value)))
    return pairs


def decode(query: str | Mapping[str, str], *, steps: int | None = None) -> ViewState:
    """The view a link asks for. Never raises: what cannot be taken is noted and left out.

    `query` is the part after '?' (or a mapping, e.g. Starlette's `request.query_params`);
    `steps` is how many lecture steps there are (default: `vlmlab.lecture.STEPS`).
    """
    notes: list[str] = []
    if isinstance(query, Mapping) or hasattr(query, "multi_items"):
        items = list(query.multi_items()) if hasattr(query, "multi_items") else list(query.items())
        text = "&".join(f"{quote(str(k)[:40], safe='')}={quote(str(v), safe='')}"
                        for k, v in items[: MAX_PARAMS + 1])
        if len(items) > MAX_PARAMS + 1:
            text += "&…"
        query = text
    elif not isinstance(query, str):
        query = ""
    pairs = _split(query, notes)
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in values:
            notes.append(f"{_named(key).capitalize()} was given twice; the first was kept.")
            continue
        if len(value) > MAX_VALUE_CHARS:
            notes.append(f"The value of {_named(key)} is too long; ignored.")
            continue
        values[key] = value

    tab = values.pop("tab", None)
    if tab is not None and tab not in TAB_VIEWS and tab != "lecture":
        notes.append("The link names a tab the lab does not have; it opens on the first tab.")
        tab = None
    sample = values.pop("sample", None)
    if sample is not None and sample not in sample_names():
        notes.append("The link names a sample photo the lab does not have; the default is shown.")
        sample = None
    projector = False
    if "projector" in values:
        try:
            projector = _flag(values.pop("projector"))
        except LinkError:
            notes.append("'projector' should be 1 or 0; it was ignored.")
    step = None
    if "step" in values:
        if steps is None:
            from .lecture import STEPS

            steps = len(STEPS)
        try:
            step = _whole(1, steps)(values.pop("step"))
        except LinkError:
            notes.append(f"The lecture has steps 1 to {steps}; the link's step was ignored.")

    settings = None
    kind = TAB_VIEWS.get(tab or "")
    if kind is not None:
        taken = {}
        for name, check in kind.PARSE.items():
            if name not in values:
                continue
            raw = values.pop(name)
            try:
                taken[name] = check(raw)
            except LabError as error:
                reason = str(error) if isinstance(error, LinkError) else "not accepted"
                notes.append(f"{_named(name).capitalize()} was ignored ({_short(reason)}).")
        settings = kind(**taken)
    for name in values:
        notes.append(f"{_named(name).capitalize()} is not a setting of this view; ignored.")
    return ViewState(tab, sample, settings, projector, step, False, tuple(notes))


def _short(reason: str) -> str:
    """A check's sentence, cut short and stripped of anything that could be markup."""
    reason = re.sub(r"[<>&`*_\[\]\\]", "", reason).strip().rstrip(".")
    return reason[:120]


def with_settings(state: ViewState, **changes) -> ViewState:
    """`state` with some settings replaced (unchecked: for values read from checked controls)."""
    return replace(state, settings=replace(state.settings, **changes))
