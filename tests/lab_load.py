"""A lecture hall on loopback: many clients at once against the launched lab, over bare HTTP.

Not a test module: test_load.py drives it. Each simulated student uploads their own photo,
joins the queue through the REST `call` API, reads the event stream and checks that the answer
is theirs. Everything is bounded: a fixed number of requests, timeouts on every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from lab_api import endpoints, photo_parameter, world_values
from PIL import Image

REQUEST_TIMEOUT = 180.0  # seconds one simulated student waits for anything, at most


@dataclass
class Request:
    """One student's request: which endpoint, their photo, their values, and how to check the
    answer is theirs (`check(outputs, http)` returns an empty string when it is)."""

    api_name: str
    photo: bytes
    values: dict[str, Any] = field(default_factory=dict)
    check: Callable[[list, httpx.AsyncClient], Awaitable[str]] | None = None
    name: str = "photo.png"
    session: str = ""  # the browser session (one per student); empty: a fresh one
    refusal: str = ""  # words of the gr.Error this student is meant to be told, if any


@dataclass
class Answer:
    request: Request
    kind: str  # "served", "busy" (no room: 429 wait budget / 503 ceiling), "refused" (a
    # gr.Error), "failed"
    seconds: float
    status: int = 200
    detail: str = ""
    mismatch: str = ""  # non-empty: the answer was not this student's
    queue_seconds: float = 0.0  # from joining the queue to the answer (the upload excluded)
    retry_after: str = ""  # busy: the Retry-After header (seconds), if any


class Hall:
    """The lab as seen from many browsers: knows the endpoints' parameter order and defaults."""

    def __init__(self, url: str, client):
        self.url = url
        self.infos = endpoints(client)

    def data(self, api_name: str, photo_path: str, values: dict) -> list:
        info = self.infos[api_name]
        values = world_values(api_name, info) | values
        photo_name = photo_parameter(info)
        row = []
        for parameter in info["parameters"]:
            name = parameter["parameter_name"]
            if name == photo_name:
                row.append({"path": photo_path, "meta": {"_type": "gradio.FileData"}})
            elif name in values:
                row.append(values[name])
            else:
                row.append(parameter.get("parameter_default"))
        return row

    async def send(self, http: httpx.AsyncClient, request: Request) -> Answer:
        start = joined_at = time.perf_counter()

        def answer(kind: str, **details) -> Answer:
            now = time.perf_counter()
            return Answer(request, kind, now - start, queue_seconds=now - joined_at, **details)

        try:
            uploaded = await http.post(
                f"{self.url}gradio_api/upload",
                files={"files": (request.name, request.photo, "image/png")},
            )
            if uploaded.status_code != 200:
                return answer("failed", status=uploaded.status_code, detail=uploaded.text[:200])
            path = uploaded.json()[0]
            base = f"{self.url}gradio_api/call{request.api_name}"
            body = {"data": self.data(request.api_name, path, request.values)}
            if request.session:
                body["session_hash"] = request.session
            joined_at = time.perf_counter()
            joined = await http.post(base, json=body)
            if joined.status_code in (429, 503):  # the wait budget, or the hard ceiling
                detail = joined.json().get("detail", "") if joined.text else ""
                retry = joined.headers.get("retry-after", "")
                return answer("busy", status=joined.status_code, detail=detail, retry_after=retry)
            if joined.status_code != 200:
                return answer("failed", status=joined.status_code, detail=joined.text[:200])
            event, payload = await self._result(http, f"{base}/{joined.json()['event_id']}")
        except httpx.HTTPError as error:
            return answer("failed", status=0, detail=f"{type(error).__name__}: {error}")
        if event == "error":
            return answer("refused", detail=json.dumps(payload)[:300])
        if event != "complete":
            return answer("failed", detail=f"stream ended with {event!r}")
        mismatch = await request.check(payload, http) if request.check else ""
        return answer("served", mismatch=mismatch)

    @staticmethod
    async def _result(http: httpx.AsyncClient, url: str) -> tuple[str, Any]:
        event = ""
        async with http.stream("GET", url) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    text = line.split(":", 1)[1].strip()
                    return event, json.loads(text) if text else None
        return event or "closed", None

    async def crowd(self, requests: list[Request], concurrency: int | None = None) -> list[Answer]:
        """Send all `requests`, at most `concurrency` at a time (all at once if None)."""
        # No connection is reused: students do not share connections, and a kept-alive one the
        # server closes after 5 idle seconds (uvicorn's keep-alive timeout) can be picked up at
        # that very moment, failing the request with a ReadError the lab never caused.
        limits = httpx.Limits(max_connections=len(requests) + 8, max_keepalive_connections=0)
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=30.0)
        gate = asyncio.Semaphore(concurrency or len(requests))
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:

            async def one(request: Request) -> Answer:
                async with gate:
                    return await self.send(http, request)

            return await asyncio.wait_for(
                asyncio.gather(*(one(r) for r in requests)), REQUEST_TIMEOUT * 2
            )

    def run(self, requests: list[Request], concurrency: int | None = None) -> list[Answer]:
        return asyncio.run(self.crowd(requests, concurrency))


async def fetch_image(http: httpx.AsyncClient, output: Any) -> np.ndarray:
    """An image output of the REST API (a FileData with a URL), as an RGB array."""
    url = output["url"] if isinstance(output, dict) else output
    response = await http.get(url)
    response.raise_for_status()
    with Image.open(io.BytesIO(response.content)) as image:
        return np.asarray(image.convert("RGB"), dtype=int)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(answers: list[Answer]) -> dict:
    """Counts by kind and latency percentiles (seconds), for the report."""
    kinds: dict[str, int] = {}
    for a in answers:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    served = [a.seconds for a in answers if a.kind == "served"]
    busy = [a.queue_seconds for a in answers if a.kind == "busy"]
    return {
        "requests": len(answers),
        **kinds,
        "served_p50_s": round(percentile(served, 50), 2),
        "served_p95_s": round(percentile(served, 95), 2),
        "busy_answer_max_s": round(max(busy), 2) if busy else None,
        "mismatched": sum(1 for a in answers if a.mismatch),
        "5xx_other_than_busy": sum(1 for a in answers if a.status >= 500 and a.kind != "busy"),
    }


@contextlib.contextmanager
def held_model_line(demo, bound_s: float = 180.0):
    """Hold every model event in its line once the line is idle: the line's slot counts as taken
    (Gradio's own `current_concurrency`) though nothing runs, so requests join and wait and none
    starts; on exit the slot is free again. Yields (the line, the /caption function)."""
    queue = demo._queue
    caption = next(fn for fn in demo.fns.values() if fn.api_name == "caption")
    queue.create_event_queue_for_fn(caption)
    line = queue.event_queue_per_concurrency_id[caption.concurrency_id]
    deadline = time.monotonic() + bound_s
    while line.queue or line.current_concurrency:
        if time.monotonic() > deadline:
            raise TimeoutError("the model line never became idle")
        time.sleep(0.05)
    line.current_concurrency += line.concurrency_limit
    try:
        yield line, caption
    finally:
        line.current_concurrency -= line.concurrency_limit
