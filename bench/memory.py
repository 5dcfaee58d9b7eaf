"""Memory of a fresh `python app.py`: peak RSS once every default model is loaded (full size), and
RSS growth over 500 mixed requests after warm-up (target ≤ 50 MB: caches are bounded, nothing
leaks per request).

Warm-up sends every endpoint every photo of a small pool, so the per-photo caches hold what
they will hold, then 100 requests of the same mix, so the allocators settle; the 500 measured
requests then cycle through the same endpoints and photos.
"""

from __future__ import annotations

import threading

from bench.app import App
from bench.endpoints import ENDPOINTS, call
from bench.harness import Row
from bench.inputs import photo_files
from bench.world import DEFAULTS  # what must be in the world (resnet50 is not loaded here)

AREA = "memory"
NEEDS = set(DEFAULTS)
POOL = 4  # photos
WARM_UP = 100  # mixed requests before the measurement starts
REQUESTS = 500
STUDENTS = 4  # clients sending the 500 at once


def rows(ctx) -> list[Row]:
    app = App(ctx.folder / "logs", extra_args=ctx.app_args())
    app.start()
    try:
        return measure(ctx, app)
    finally:
        app.stop()


def measure(ctx, app: App) -> list[Row]:
    from bench.app import endpoint_names

    clients = [app.client() for _ in range(STUDENTS)]
    apis = [api for api in ENDPOINTS if api in endpoint_names(clients[0])]
    paths = photo_files(ctx.folder / "photos-pool", POOL, (600, 450))
    start_rss, _ = app.rss_mb()
    for api in apis:  # every default model loads once
        call(clients[0], api, paths[0])
    loaded_rss, loaded_peak = app.rss_mb()
    for path in paths[1:]:  # warm-up: every endpoint sees every photo of the pool
        for api in apis:
            call(clients[0], api, path)
    failures: list[str] = []
    samples: list[float] = []
    mix(clients, apis, paths, WARM_UP, failures, samples)
    warm_rss, _ = app.rss_mb()

    total = ctx.scaled(REQUESTS, least=len(apis) * 4)
    samples.clear()
    mix(clients, apis, paths, total, failures, samples, app)
    end_rss, end_peak = app.rss_mb()
    growth = end_rss - warm_rss
    trail = " → ".join(f"{mb:.0f}" for mb in [warm_rss, *samples, end_rss])
    return [
        Row(
            AREA, "peak RSS, every default model loaded once", ours=f"{loaded_peak:.0f} MB",
            note=f"{len(apis)} endpoints called once: each tab's default model (AlexNet, ViT-B/16, "
            f"CLIP ViT-B/32, BLIP base, ViLT) is loaded; RSS {start_rss:.0f} MB "
            f"at start, {loaded_rss:.0f} MB after, {warm_rss:.0f} MB after warm-up, peak by the end "
            f"{end_peak:.0f} MB",
        ),
        Row(
            AREA, f"RSS growth over {total} mixed requests", ours=f"{growth:+.0f} MB",
            target="≤ 50 MB", ok=growth <= 50 and not failures,
            note=f"RSS in MB every 100 requests: {trail}; {len(failures)} failed"
            + (f" (first: {failures[0]})" if failures else ""),
        ),
    ]  # fmt: skip


def mix(clients, apis, paths, total, failures, samples, app=None) -> None:
    """`total` requests, endpoint after endpoint, photo after photo, from all clients at once."""

    def student(k: int) -> None:
        for n in range(k, total, STUDENTS):
            api = apis[n % len(apis)]
            try:
                call(clients[k], api, paths[(n // len(apis)) % POOL])
            except Exception as error:  # noqa: BLE001 - a failure is reported, not fatal
                failures.append(f"{api}: {str(error)[:80]}")
            if app is not None and k == 0 and n % 100 < STUDENTS:
                samples.append(app.rss_mb()[0])

    threads = [
        threading.Thread(target=student, args=(k,), daemon=True) for k in range(len(clients))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
