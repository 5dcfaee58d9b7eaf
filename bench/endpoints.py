"""End to end: every public endpoint through `gradio_client` on loopback, p50 and p95.

Each call sends a different photo (upload, decode, forward, render, download of the outputs),
so per-photo caches miss: the latency a user meets with a new photo. Other inputs keep the
values the page starts with, except where noted in `ENDPOINTS`.
"""

from __future__ import annotations

from bench.harness import Row, ms, percentile, repeat
from bench.inputs import photo_files
from bench.world import DEFAULTS

AREA = "endpoints"
NEEDS = set(DEFAULTS)

# api_name -> (inputs changed from the page's start values, calls timed)
ENDPOINTS: dict[str, tuple[dict, int]] = {
    "apply_kernel": ({}, 20),
    "classify": ({}, 20),
    "feature_maps": ({"channel": None}, 12),  # None: the most active channel
    "vit_attention": ({"layer_value": 12}, 10),  # the slider starts above any model's depth
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
    "caption": ({"start": ""}, 6),  # no prefix
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
    from bench.app import endpoint_names

    client = ctx.client()
    offered = endpoint_names(client)
    out = []
    for api, (_, count) in ENDPOINTS.items():
        what = f"/{api}, new photo each call"
        if api not in offered:
            out.append(Row(AREA, what, ok=False, note="the app offers no such endpoint yet"))
            continue
        paths = photo_files(ctx.folder / "photos", ctx.scaled(count) + 1)

        def once(i, api=api, paths=paths):  # the warm-up (i < 0) takes the first photo
            return call(client, api, paths[max(i + 1, 0)])

        try:
            seconds = repeat(once, ctx.scaled(count))
        except Exception as error:  # noqa: BLE001 - a broken endpoint is a finding, not a crash
            out.append(Row(AREA, what, ok=False, note=f"failed: {str(error)[:160]}"))
            continue
        p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
        out.append(
            Row(
                AREA,
                what,
                ours=f"p50 {ms(p50)} · p95 {ms(p95)}",
                note=f"{len(seconds)} calls after one warm-up",
            )
        )
    return out
