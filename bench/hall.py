"""A lecture hall: 1, 8, 16 and 32 students at once sending different photos to `zero_shot` (same
labels) and `classify`. Throughput, p50, p95 and how many were turned away (queue full).
Target: 16 at once ≥ 1.5× the throughput of one at a time (Gradio batches the model events).

Each student is a page on 127.0.0.1 (its own kept-alive HTTP connection, in a thread of this
process) that uploads its photo and asks; gradio_client would spend more of the two cores on
the client side than the server does on a small model. The load is bounded (a fixed number of
requests and a deadline) and stops by itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bench.app import BrowserLike, TurnedAway
from bench.harness import Row, percentile, times
from bench.inputs import photo_files

AREA = "hall"
NEEDS = {"alexnet", "openai/clip-vit-base-patch32"}
LEVELS = (1, 8, 16, 32)  # students at once
PER_LEVEL = 48  # requests per level (one student at a time: 16); every one a new photo
DEADLINE_S = 60.0  # no student starts a request after this many seconds of a level


@dataclass(frozen=True)
class Storm:
    students: int
    done: int
    turned_away: int
    failed: int
    seconds: float
    latencies: tuple[float, ...]

    @property
    def throughput(self) -> float:  # answered requests per second
        return self.done / self.seconds if self.seconds else 0.0


def storm(pages: list[BrowserLike], paths: list[str], per_student: int) -> Storm:
    """Every page sends `per_student` requests (its own photos) as fast as answers come."""
    latencies: list[float] = []
    outcome = {"done": 0, "turned_away": 0, "failed": 0}
    lock = threading.Lock()
    start_line = threading.Barrier(len(pages) + 1)
    deadline = [0.0]

    def student(k: int, page: BrowserLike) -> None:
        start_line.wait()
        for j in range(per_student):
            if time.perf_counter() > deadline[0]:
                return
            began = time.perf_counter()
            try:
                page.call(page.upload(paths[k * per_student + j]))  # pick a photo, press the button
                kind = "done"
            except TurnedAway:
                kind = "turned_away"
            except Exception:  # noqa: BLE001 - counted, not raised
                kind = "failed"
            with lock:
                outcome[kind] += 1
                if kind == "done":
                    latencies.append(time.perf_counter() - began)

    threads = [
        threading.Thread(target=student, args=(k, p), daemon=True) for k, p in enumerate(pages)
    ]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + DEADLINE_S
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(DEADLINE_S + 120)
    seconds = time.perf_counter() - began
    return Storm(
        len(pages),
        outcome["done"],
        outcome["turned_away"],
        outcome["failed"],
        seconds,
        tuple(latencies),
    )


def rows(ctx) -> list[Row]:
    client = ctx.client()
    out = []
    for api in ("zero_shot", "classify"):
        pages = [BrowserLike(client, api) for _ in range(max(LEVELS))]  # one page per student
        plan = {
            n: max(1, -(-ctx.scaled(16 if n == 1 else PER_LEVEL, least=n) // n)) for n in LEVELS
        }
        paths = photo_files(ctx.folder / "photos", 1 + sum(n * k for n, k in plan.items()))
        pages[0].call(pages[0].upload(paths[0]))  # the model loads before the clock starts
        used, storms = 1, {}
        for n, per_student in plan.items():
            storms[n] = storm(pages[:n], paths[used:], per_student)
            used += n * per_student
        for n, s in storms.items():
            out.append(Row(
                AREA, f"/{api}, {n} at once", ours=f"{s.throughput:.1f}/s",
                theirs=f"p50 {percentile(s.latencies, 50):.2f} s · p95 {percentile(s.latencies, 95):.2f} s",
                note=f"{s.done} answered, {s.turned_away} turned away (queue full), {s.failed} failed, "
                f"in {s.seconds:.1f} s",
            ))  # fmt: skip
        gain = storms[16].throughput / storms[1].throughput
        out.append(Row(
            AREA, f"/{api} throughput, 16 at once", "one at a time",
            f"{storms[16].throughput:.1f}/s", f"{storms[1].throughput:.1f}/s", times(gain),
            "≥ 1.5×", gain >= 1.5 and storms[16].failed == 0,
        ))  # fmt: skip
    return out
