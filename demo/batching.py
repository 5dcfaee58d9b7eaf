"""One error policy for every batched endpoint (`/classify`, `/zero_shot`).

Gradio gathers a lecture hall's simultaneous requests into one call of a batched event: one
list per input, one entry per caller. `batched` turns an engine's many-at-once call into such a
handler, and owns what happens when some requests are bad: each bad request gets its own
sentence in its own outputs and the others are still served; a batch in which every request
failed for the same reason (a caller alone, say) fails as a whole with that sentence, as an
unbatched endpoint would.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import gradio as gr

from .common import FAULT, log
from vlmlab.errors import user_message

WARNING = "⚠️"  # opens the sentence a bad request in a batch gets in its outputs


class Refused:
    """A request that cannot be answered, and the sentence that says why."""

    def __init__(self, sentence: str):
        self.sentence = sentence


def reason(error: BaseException, endpoint: str) -> str:
    """The one sentence a caller sees for `error`: the engine's or the app's own, else FAULT
    (and the fault is logged)."""
    if isinstance(error, gr.Error):
        return str(error.message)
    message = user_message(error)
    if message is None:
        log.error("%s failed", endpoint, exc_info=error)
        message = FAULT
    return message


def answer_all(
    values: Sequence[tuple],
    prepare: Callable[..., Any],
    run: Callable[[list], Sequence[Any]],
    *,
    group: Callable[[Any], Hashable] | None = None,
    endpoint: str = "batch",
) -> list[Any]:
    """Each caller's answer (or `Refused`), in order: `prepare(*values)` makes one engine
    request (raising the caller's sentence for a bad one); `run(requests)` answers a group of
    them in one engine call, one answer per request, an exception in place of a request it
    could not answer. A `run` that fails as a whole fails only the requests of its group
    (`group(request)`: e.g. the model, so one missing network does not fail another's callers).
    """
    answers: list[Any] = [None] * len(values)
    groups: dict[Hashable, list[tuple[int, Any]]] = {}
    for i, caller in enumerate(values):
        try:
            request = prepare(*caller)
        except Exception as error:  # noqa: BLE001 - this caller's sentence, nobody else's
            answers[i] = Refused(reason(error, endpoint))
            continue
        key = group(request) if group is not None else None
        groups.setdefault(key, []).append((i, request))
    for members in groups.values():
        try:
            found = list(run([request for _, request in members]))
            if len(found) != len(members):
                raise RuntimeError(f"{len(found)} answers for {len(members)} requests")
        except Exception as error:  # noqa: BLE001 - reported to this group's callers only
            found = [error] * len(members)
        for (i, _), answer in zip(members, found):
            failed = isinstance(answer, BaseException)
            answers[i] = Refused(reason(answer, endpoint)) if failed else answer
    return answers


def batched(
    prepare: Callable[..., Any],
    run: Callable[[list], Sequence[Any]],
    show: Callable[[Any], tuple],
    refuse: Callable[[str], tuple],
    *,
    group: Callable[[Any], Hashable] | None = None,
    name: str = "batch",
) -> Callable[..., tuple[list, ...]]:
    """A handler for `batch=True` events: Gradio's lists of inputs → one list per output.

    `show(answer)` and `refuse(sentence)` give one caller's output values (a tuple in the
    outputs' order); the sentence starts with WARNING. See `answer_all` for `prepare`, `run`
    and `group`. The handler's `one(*values)` answers a single caller outside a batch (a link,
    say) and raises its sentence as a `gr.Error`.
    """

    def handle(*columns: list) -> tuple[list, ...]:
        answers = answer_all(list(zip(*columns)), prepare, run, group=group, endpoint=name)
        sentences = {answer.sentence for answer in answers if isinstance(answer, Refused)}
        if answers and len(sentences) == 1 and all(isinstance(a, Refused) for a in answers):
            raise gr.Error(sentences.pop(), print_exception=False)
        outputs = [
            refuse(f"{WARNING} {answer.sentence}") if isinstance(answer, Refused) else show(answer)
            for answer in answers
        ]
        return tuple(list(column) for column in zip(*outputs))

    def one(*values) -> tuple:
        return tuple(column[0] for column in handle(*([value] for value in values)))

    handle.__name__ = handle.__qualname__ = name
    # The endpoint's parameters are prepare's (their names are what `client.view_api()` lists).
    handle.__signature__ = inspect.signature(prepare)  # type: ignore[attr-defined]
    handle.one = one  # type: ignore[attr-defined]
    return handle
