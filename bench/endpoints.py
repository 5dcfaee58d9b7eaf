"""End to end: every public endpoint through `gradio_client` on loopback, p50 and p95, and
beside it the same through Gradio's HTTP API the way a page calls it (bench.app.BrowserLike).

Each call sends a different photo (upload, decode, forward, render, download of the outputs),
so per-photo caches miss: the latency a user meets with a new photo. Other inputs keep the
values the page starts with, except where noted in `ENDPOINTS`.
"""

from __future__ import annotations

from bench.harness import Row, interleave, ms, percentile
from bench.inputs import photo_files
from bench.world import DEFAULTS

AREA = "endpoints"
NEEDS = set(DEFAULTS)

# api_name -> (inputs changed from the page's start values, calls timed)
ENDPOINTS: dict[str, tuple[dict, int]] = {
    "apply_kernel": ({}, 20),
    "classify": ({}, 20),
    "feature_maps": ({"channel": None}, 12),  # None: the most active channel
    "vit_attention": ({"layer": 12}, 10),  # the slider starts above any model's depth
    "zero_shot": ({}, 20),
    # The photo (new each call) and the four samples the page starts with, against their captions.
    "similarity": (
        {
            "picked": ["your photo", "chelsea", "astronaut", "coffee", "rocket"],
            "uploads": None,
            "pairs": False,
        },
        10,
    ),
    "caption": ({"prompt": ""}, 6),  # no prefix
    "answer": ({}, 10),
}


def call(client, api: str, path: str, **inputs):
    """One request to `api` with the photo at `path`; returns the final outputs."""
    from gradio_client import handle_file

    return client.predict(handle_file(path), api_name=f"/{api}", **{**ENDPOINTS[api][0], **inputs})


def submit(client, api: str, path: str, **inputs):
    """Like `call`, but returns the Job (to read a stream as it comes)."""
    from gradio_client import handle_file

    return client.submit(handle_file(path), api_name=f"/{api}", **{**ENDPOINTS[api][0], **inputs})


def rows(ctx) -> list[Row]:
    from bench.app import BrowserLike, endpoint_names

    client = ctx.client()
    offered = endpoint_names(client)
    out = []
    for api, (inputs, count) in ENDPOINTS.items():
        what = f"/{api}, new photo each call"
        if api not in offered:
            out.append(Row(AREA, what, ok=False, note="the app offers no such endpoint"))
            continue
        repeats = ctx.scaled(count)
        paths = photo_files(ctx.folder / "photos", 2 * repeats + 2)
        page = BrowserLike(client, api)

        def by_client(i, api=api, paths=paths):  # the warm-up (i < 0) takes the first photo
            return call(client, api, paths[max(i + 1, 0)])

        def by_page(i, page=page, own=paths[repeats + 1 :], inputs=inputs):  # new photo, ask
            return page.call(page.upload(own[max(i + 1, 0)]), **inputs)

        try:
            pair = interleave(by_client, by_page, repeats)
        except Exception as error:  # noqa: BLE001 - a broken endpoint is a finding, not a crash
            out.append(Row(AREA, what, ok=False, note=f"failed: {str(error)[:160]}"))
            continue
        mine, page_times = pair.ours_times, pair.peer_times
        out.append(
            Row(
                AREA,
                what,
                "the same, HTTP API like a page",
                f"p50 {ms(percentile(mine, 50))} · p95 {ms(percentile(mine, 95))}",
                f"p50 {ms(percentile(page_times, 50))} · p95 {ms(percentile(page_times, 95))}",
                note=f"{repeats} calls each way after one warm-up",
            )
        )
    return out
