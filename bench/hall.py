"""A lecture hall: 1, 8, 16 and 32 students at once sending different photos to `zero_shot` (same
labels) and `classify`. Throughput, p50, p95 and how many were turned away (queue full).
Target: 16 at once ≥ 1.5× the throughput of one at a time (Gradio batches the model events).

Every student is its own `gradio_client` session on 127.0.0.1, in a thread of this process; the
load is bounded (a fixed number of requests and a deadline) and stops by itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bench.endpoints import call
from bench.harness import Row, percentile, times
from bench.inputs import photo_files

AREA = "hall"
NEEDS = {"alexnet", "openai/clip-vit-base-patch32"}
LEVELS = (1, 8, 16, 32)  # students at once
PER_LEVEL = 48  # requests per level (one student at a time: 12); every one a new photo
DEADLINE_S = 90.0  # no student starts a request after this many seconds of a level


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


def storm(clients, api: str, paths: list[str], per_student: int) -> Storm:
    """Every client sends `per_student` requests (its own photos) as fast as answers come."""
    latencies: list[float] = []
    outcome = {"done": 0, "turned_away": 0, "failed": 0}
    lock = threading.Lock()
    start_line = threading.Barrier(len(clients) + 1)
    deadline = [0.0]

    def student(k: int, client) -> None:
        start_line.wait()
        for j in range(per_student):
            if time.perf_counter() > deadline[0]:
                return
            began = time.perf_counter()
            try:
                call(client, api, paths[k * per_student + j])
                kind = "done"
            except Exception as error:  # noqa: BLE001 - counted, not raised
                kind = "turned_away" if "queue is full" in str(error).lower() else "failed"
            with lock:
                outcome[kind] += 1
                if kind == "done":
                    latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=student, args=(k, c), daemon=True) for k, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + DEADLINE_S
    start_line.wait()
    for thread in threads:
        thread.join(DEADLINE_S + 120)
    seconds = time.perf_counter() - began
    return Storm(len(clients), outcome["done"], outcome["turned_away"], outcome["failed"], seconds, tuple(latencies))


def rows(ctx) -> list[Row]:
    app = ctx.app()
    clients = [app.client() for _ in range(max(LEVELS))]  # one session per student
    out = []
    for api in ("zero_shot", "classify"):
        paths = photo_files(ctx.folder / "photos", 1 + sum(_plan(n, ctx)[1] * n for n in LEVELS))
        call(clients[0], api, paths[0])  # the model loads before the clock starts
        used, storms = 1, {}
        for n in LEVELS:
            students, per_student = _plan(n, ctx)
            storms[n] = storm(clients[:students], api, paths[used:], per_student)
            used += students * per_student
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


def _plan(students: int, ctx) -> tuple[int, int]:
    """(students, requests each) for one level: PER_LEVEL requests in all (12 for one student)."""
    total = ctx.scaled(12 if students == 1 else PER_LEVEL, least=students)
    return students, max(1, -(-total // students))
