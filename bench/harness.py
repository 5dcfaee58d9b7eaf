"""The shared harness: interleaved A/B timing, medians and percentiles, and the one table.

Machines here are shared and noisy, so every comparison alternates its two sides in one loop
(A B, B A, A B …) and quotes medians; the ratio of the medians is what a target is held to.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

Call = Callable[[int], object]  # called with the repetition number (to pick a fresh input)


@dataclass(frozen=True)
class Pair:
    """Medians of two interleaved sides, in seconds."""

    ours: float
    peer: float
    ours_times: tuple[float, ...]
    peer_times: tuple[float, ...]

    @property
    def ratio(self) -> float:  # ours / peer: below 1 means we are faster
        return self.ours / self.peer


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    _wait_for_gpu()
    return time.perf_counter() - start


def _wait_for_gpu() -> None:
    """GPU work is queued: a time means nothing until the queue has run dry."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def repeat(fn: Call, repeats: int, *, warmup: int = 1) -> list[float]:
    """Seconds of `repeats` calls after `warmup` untimed ones (all given distinct numbers)."""
    for i in range(warmup):
        fn(-1 - i)
    return [timed(functools.partial(fn, i)) for i in range(repeats)]


def interleave(ours: Call, peer: Call, repeats: int, *, warmup: int = 1) -> Pair:
    """Time `ours` against `peer`, alternating which goes first; both get the same number."""
    for i in range(warmup):
        ours(-1 - i)
        peer(-1 - i)
    a: list[float] = []
    b: list[float] = []
    for i in range(repeats):
        first, second = (ours, a), (peer, b)
        for fn, seconds in (first, second) if i % 2 == 0 else (second, first):
            seconds.append(timed(functools.partial(fn, i)))
    return Pair(statistics.median(a), statistics.median(b), tuple(a), tuple(b))


def percentile(values, q: float) -> float:
    """The q-th percentile (0–100), linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------
# Rows and the table


@dataclass(frozen=True)
class Row:
    """One line of the table. `ok` is None for context rows that carry no target."""

    area: str
    what: str
    peer: str = "—"
    ours: str = "—"  # formatted measurement (a median unless it says otherwise)
    theirs: str = "—"
    ratio: str = "—"
    target: str = "—"
    ok: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "info"}[self.ok]


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.2f} ms"


def times(value: float) -> str:
    if value < 0.1:  # small ratios are held to 5%: show the digit that decides
        return f"{value:.3f}×"
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


def at_most(area: str, what: str, peer: str, pair: Pair, bound: float, note: str = "") -> Row:
    """A row held to ours/peer ≤ bound."""
    return Row(
        area, what, peer, ms(pair.ours), ms(pair.peer), times(pair.ratio), f"≤ {bound:g}×",
        pair.ratio <= bound, note,
    )  # fmt: skip


def faster_by(area: str, what: str, peer: str, pair: Pair, factor: float, note: str = "") -> Row:
    """A row held to peer/ours ≥ factor (we are at least `factor` times faster)."""
    speedup = pair.peer / pair.ours
    return Row(
        area, what, peer, ms(pair.ours), ms(pair.peer), f"{times(speedup)} faster",
        f"≥ {factor:g}× faster", speedup >= factor, note,
    )  # fmt: skip


def failed(area: str, what: str, error: BaseException) -> Row:
    """A row for a benchmark that could not run: it counts as a miss, with the reason."""
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return Row(area, what, ok=False, note=f"could not run: {reason[:160]}")


COLUMNS = ("area", "measured", "peer", "ours", "peer time", "ratio", "target", "result")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.area, row.what, row.peer, row.ours, row.theirs, row.ratio, row.target, row.verdict)


def format_text(rows: list[Row]) -> str:
    """The table for a terminal, notes under it, numbered."""
    cells = [COLUMNS] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  [{row.area}] {row.what}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))


def format_markdown(rows: list[Row], header: str = "") -> str:
    """The same table as GitHub markdown (for README's Performance section)."""

    def line(cells) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [header, ""] if header else []
    out.append(line(COLUMNS))
    out.append(line(["---"] * len(COLUMNS)))
    out += [line(_cells(row)) for row in rows]
    notes = [f"- **{row.area} · {row.what}**: {row.note}" for row in rows if row.note]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"
