"""The lab as users meet it: `python app.py` in a subprocess on 127.0.0.1, and clients for it.

The subprocess inherits the benchmark world's environment (offline caches of full-size models),
so it loads and serves exactly what a lecture would, only with random weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.world import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class App:
    """One launched app. `start()` returns the seconds from spawn to the first HTTP 200."""

    def __init__(self, log_dir: Path, *, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_dir / f"app-{self.port}.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> float:
        command = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                command + list(self.extra_args), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = start + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"app.py exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"app.py gave no HTTP 200 within {timeout:.0f} s; see {self.log_path}")

    def client(self):
        from gradio_client import Client

        downloads = self.log_path.parent / "downloads"  # outputs are fetched, as a browser would
        return Client(
            self.url, verbose=False, analytics_enabled=False, download_files=str(downloads)
        )

    def rss_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) of the app process, in MB (Linux /proc)."""
        assert self.process is not None
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class TurnedAway(RuntimeError):
    """The server's queue was full (HTTP 503): the user is told to try again later."""


class BrowserLike:
    """Gradio's HTTP API the way a page uses it: one kept-alive connection, the photo uploaded
    once and referred to afterwards, events read from the server-sent stream as they arrive,
    output images fetched by URL. (gradio_client re-uploads every file and polls its message
    queue every 50 ms, which a browser does not.)"""

    def __init__(self, client, api: str):
        import httpx

        info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][f"/{api}"]
        self.names = [p.get("parameter_name") for p in info["parameters"]]
        self.defaults = [p.get("parameter_default") for p in info["parameters"]]  # page's start
        self.http = httpx.Client(base_url=client.src.rstrip("/") + "/gradio_api", timeout=120)
        self.api = api

    def upload(self, path: str) -> dict:
        with open(path, "rb") as file:
            response = self.http.post("/upload", files=[("files", (Path(path).name, file))])
        response.raise_for_status()
        return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}

    def call(self, *inputs, **named):
        data = list(inputs) + self.defaults[len(inputs) :]
        for name, value in named.items():
            data[self.names.index(name)] = value
        response = self.http.post(f"/call/{self.api}", json={"data": data})
        if response.status_code == 503:
            raise TurnedAway(response.text[:120])
        response.raise_for_status()
        event, outputs = None, None
        with self.http.stream("GET", f"/call/{self.api}/{response.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    outputs = json.loads(line.split(":", 1)[1])
                    break
        if event != "complete":
            raise RuntimeError(f"/{self.api} answered {event}: {str(outputs)[:120]}")
        for output in outputs:  # the page then shows each output image: fetch it
            if isinstance(output, dict) and output.get("url"):
                self.http.get(output["url"]).raise_for_status()
        return outputs


def endpoint_names(client) -> set[str]:
    """The public api_names the app offers (without the leading slash)."""
    info = client.view_api(print_info=False, return_format="dict")
    return {name.lstrip("/") for name in info.get("named_endpoints", {})}


def environment_note() -> str:
    return f"torch threads follow the {len(os.sched_getaffinity(0))} cores this process may use"
