"""The lab as users meet it: `python app.py` in a subprocess on 127.0.0.1, and clients for it.

The subprocess inherits the benchmark world's environment (offline caches of full-size models),
so it loads and serves exactly what a lecture would, only with random weights.
"""

from __future__ import annotations

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
        log = open(self.log_path, "wb")
        start = time.perf_counter()
        self.process = subprocess.Popen(
            command + list(self.extra_args), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = start + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}; see {self.log_path}")
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
        return Client(self.url, verbose=False, analytics_enabled=False, download_files=str(downloads))

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


def endpoint_names(client) -> set[str]:
    """The public api_names the app offers (without the leading slash)."""
    info = client.view_api(print_info=False, return_format="dict")
    return {name.lstrip("/") for name in info.get("named_endpoints", {})}


def environment_note() -> str:
    return f"torch threads follow the {len(os.sched_getaffinity(0))} cores this process may use"
