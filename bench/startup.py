"""Cold start: from `python app.py` to the first HTTP 200 (target ≤ 10 s). Models load lazily,
so the page (and the Pixels and Convolution tabs) works before any model is in memory."""

from __future__ import annotations

import statistics

from bench.app import App
from bench.harness import Row, ms

AREA = "startup"
NEEDS: set[str] = set()
LAUNCHES = 3


def rows(ctx) -> list[Row]:
    seconds = []
    for _ in range(ctx.scaled(LAUNCHES, least=2)):
        app = App(ctx.folder / "logs", extra_args=ctx.app_args())
        try:
            seconds.append(app.start())
        finally:
            app.stop()
    median = statistics.median(seconds)
    return [
        Row(
            AREA, "cold start: python app.py → first HTTP 200", ours=ms(median), target="≤ 10 s",
            ok=median <= 10.0, note=f"median of {len(seconds)} launches: "
            + ", ".join(ms(s) for s in seconds),
        )
    ]  # fmt: skip
