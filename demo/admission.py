"""Admission by expected wait: in a lecture hall, everyone who can be served in time is served.

Gradio's queue keeps one line per concurrency id (`demo.common.MODEL_EVENT`, `LIGHT_EVENT`), shows
each waiting student their position and ETA, and refuses anyone past `max_size` (the hard
ceiling). vlmlab adds one decision at the door: a request joins its line when the work ahead of
it (requests waiting and running × each endpoint's measured seconds per request, batching
included) fits the wait budget, and is refused at once otherwise (HTTP 429 and a sentence saying
when to try again). The same per-request estimates feed the ETA Gradio shows while a student waits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException

log = logging.getLogger("vlmlab")

WAIT_BUDGET_S = 30.0  # the longest a student is asked to wait (app.py --wait-budget)
WAIT_BUDGET_ENV = "VLMLAB_WAIT_BUDGET"
FIRST_GUESS_S = 1.0  # seconds per request before an endpoint has been measured: on the safe side
WINDOW = 16  # the estimate is the median of this many recent requests' times: one slow run (a
# model loading) moves it not; in a hall, two full batches carry it to the hall's pace
CEILING_SHARE = 0.9  # one line may fill this much of the hard ceiling: light events always fit
MIN_RETRY_S = 5


def wait_budget_from_env(default: float = WAIT_BUDGET_S) -> float:
    """The wait budget `VLMLAB_WAIT_BUDGET` asks for (seconds), else `default`."""
    text = os.environ.get(WAIT_BUDGET_ENV)
    if not text:
        return default
    try:
        return check_budget(float(text))
    except ValueError:
        raise ValueError(
            f"{WAIT_BUDGET_ENV} must be a positive number of seconds, not {text!r}."
        ) from None


def check_budget(seconds: float) -> float:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"The wait budget must be a positive number of seconds, not {seconds}.")
    return float(seconds)


class ServiceTime:
    """One endpoint's moving estimate of seconds per request: the median over its last WINDOW
    requests of each one's share of its run (a batch of n served in t seconds: n shares of t/n).
    Gradio's queue reads it as its own `ProcessTime` (`avg_time`) for the ETA it shows."""

    def __init__(self, first_guess: float = FIRST_GUESS_S):
        self.first_guess = first_guess
        self.samples: deque[float] = deque(maxlen=WINDOW)
        self.count = 0  # runs measured

    @property
    def avg_time(self) -> float:
        return statistics.median(self.samples) if self.samples else self.first_guess

    def record(self, seconds: float, requests: int) -> None:
        if requests > 0:
            share = max(seconds, 0.0) / requests
            self.samples.extend([share] * min(requests, WINDOW))
            self.count += 1

    def add(self, seconds: float) -> None:
        """Gradio's own sample (a whole batch's time, its size unknown): `record` has it."""


class ServiceTimes(dict):
    """Stands in for Gradio's `Queue.process_time_per_fn`: every function has an estimate from
    the start (the first guess), so the queue reports an ETA to the very first students."""

    def __contains__(self, fn) -> bool:
        return True

    def __missing__(self, fn) -> ServiceTime:
        self[fn] = estimate = ServiceTime()
        return estimate


@dataclass(frozen=True)
class Decision:
    """One request at the door: the work ahead of it and whether it joined the line."""

    endpoint: str
    ahead: int  # requests waiting or running in its line
    expected_wait_s: float
    admitted: bool
    retry_after_s: int = 0  # refused: when its line should have room again


def expected_wait(
    waiting: list[float], running: list[tuple[float, int, float]], concurrency_limit: int | None
) -> float:
    """Seconds until a new request starts: `waiting` holds each queued request's estimate,
    `running` each run in progress as (seconds per request, requests, seconds elapsed)."""
    if concurrency_limit is None:
        return 0.0
    work = sum(waiting) + sum(max(0.0, per * n - elapsed) for per, n, elapsed in running)
    return work / max(concurrency_limit, 1)


def retry_after(wait_s: float, budget_s: float) -> int:
    """When the line ahead should have shrunk to the budget, rounded up to a friendly figure."""
    seconds = max(wait_s - budget_s, MIN_RETRY_S)
    step = 5 if seconds <= 60 else 10 if seconds <= 300 else 60
    return int(math.ceil(seconds / step) * step)


def refusal(retry_s: int) -> str:
    """The sentence a refused student reads."""
    when = f"{retry_s} s" if retry_s < 120 else f"{round(retry_s / 60)} min"
    return f"The lab is busy right now; please try again in about {when}."


class Admission:
    """The door of a Gradio queue (see `install`): decides, measures, and keeps a log."""

    def __init__(self, queue, budget_s: float = WAIT_BUDGET_S, log_size: int = 2000):
        self.queue = queue
        self.budget_s = check_budget(budget_s)
        self.decisions: deque[Decision] = deque(maxlen=log_size)  # recent, for reports
        self.decided = 0  # decisions ever made
        self.service_times = ServiceTimes()
        self._running: dict[int, tuple[object, int, float]] = {}  # id → (fn, requests, start)
        self._door: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # -- the estimate ------------------------------------------------------------------------

    def service_time(self, fn) -> ServiceTime:
        return self.service_times[fn]

    def decide(self, fn) -> Decision:
        """Whether a request for `fn` may join its line now."""
        line = self.queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
        waiting = list(line.queue) if line else []
        now = time.monotonic()
        running = [
            (self.service_time(f).avg_time, n, now - start)
            for f, n, start in list(self._running.values())
            if f.concurrency_id == fn.concurrency_id
        ]
        limit = line.concurrency_limit if line else self._limit(fn)
        wait = expected_wait([self.service_time(e.fn).avg_time for e in waiting], running, limit)
        ahead = len(waiting) + sum(n for _, n, _ in running)
        ceiling = self.queue.max_size
        full = ceiling is not None and len(waiting) >= CEILING_SHARE * ceiling
        name = f"/{fn.api_name}" if fn.api_name else str(fn.name)
        if wait <= self.budget_s and not full:
            decision = Decision(name, ahead, round(wait, 3), True)
        else:
            retry = retry_after(wait, self.budget_s)
            decision = Decision(name, ahead, round(wait, 3), False, retry)
        self.decisions.append(decision)
        self.decided += 1
        return decision

    def _limit(self, fn) -> int | None:
        limit = fn.concurrency_limit
        return self.queue.default_concurrency_limit if limit == "default" else limit

    def since(self, decided: int) -> list[Decision]:
        """The decisions made after the first `decided` (as far as the log reaches back)."""
        count = min(self.decided - decided, len(self.decisions))
        return list(self.decisions)[len(self.decisions) - count :] if count > 0 else []

    @staticmethod
    def summary(decisions: list[Decision]) -> dict:
        """Admitted and refused counts per endpoint, with the longest expected wait admitted
        and the shortest refused."""
        out: dict[str, dict] = {}
        for d in decisions:
            empty = {"admitted": 0, "refused": 0, "longest_admitted_s": 0.0}
            row = out.setdefault(d.endpoint, empty | {"shortest_refused_s": None})
            if d.admitted:
                row["admitted"] += 1
                row["longest_admitted_s"] = max(row["longest_admitted_s"], d.expected_wait_s)
            else:
                row["refused"] += 1
                shortest = row["shortest_refused_s"]
                row["shortest_refused_s"] = min(shortest or math.inf, d.expected_wait_s)
        return out

    # -- the hooks on Gradio's queue ---------------------------------------------------------

    def hook_push(self, push: Callable) -> Callable:
        async def admitted_push(body, request, username):
            loop = asyncio.get_running_loop()
            if self._door is None or self._door[0] is not loop:  # a relaunch has a new loop
                self._door = (loop, asyncio.Lock())
            # One decision at a time, each after the previous request joined: no two requests
            # see the same line.
            async with self._door[1]:
                fn = self._fn(body)
                decision = None
                if fn is not None:
                    try:
                        decision = self.decide(fn)
                    except Exception:  # noqa: BLE001 - the door never keeps the lab from serving
                        log.exception("admission decision failed; admitting")
                if decision is not None and not decision.admitted:
                    raise HTTPException(
                        status_code=429,
                        detail=refusal(decision.retry_after_s),
                        headers={"Retry-After": str(decision.retry_after_s)},
                    )
                return await push(body, request, username)

        return admitted_push

    def _fn(self, body):
        try:
            if body.fn_index is None:
                return None
            state = self.queue.blocks.state_holder
            if body.session_hash and body.session_hash in state:
                return state[body.session_hash].blocks_config.fns[body.fn_index]
            return self.queue.blocks.fns[body.fn_index]
        except (KeyError, AttributeError):
            return None  # Gradio's own push says what is wrong

    def hook_process_events(self, process_events: Callable) -> Callable:
        async def measured(events, batch, begin_time, fn):
            requests = sum(1 for event in events if event.alive)
            start = time.monotonic()
            key = id(events)
            self._running[key] = (fn, requests, start)
            try:
                await process_events(events, batch, begin_time, fn)
            finally:
                self._running.pop(key, None)
                self.service_time(fn).record(time.monotonic() - start, requests)

        return measured


def install(demo, budget_s: float = WAIT_BUDGET_S) -> Admission:
    """Put the door on `demo`'s queue (call after `demo.queue(...)`); `admission_of(demo)` finds
    it again (app.py sets the budget)."""
    queue = demo._queue
    admission = Admission(queue, budget_s)
    queue.push = admission.hook_push(queue.push)
    queue.process_events = admission.hook_process_events(queue.process_events)
    queue.process_time_per_fn = admission.service_times
    queue.admission = admission
    return admission


def admission_of(demo) -> Admission:
    return demo._queue.admission
