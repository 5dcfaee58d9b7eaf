"""Helpers for testing the launched lab through its public API, as a student's script would.

Not a test module: the hardening, serving, load and browser tests import it. It knows the
endpoints only through the app's own API description (`client.view_api`), so a tab that adds a
control is covered without editing this file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo.common import FAULT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make browser`); Playwright drives it
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ALIVE_TIMEOUT = 2.0  # seconds: the lab must still answer GET / this quickly after every case

# The public endpoints the issues name; each takes the lab's photo as a file.
PHOTO_ENDPOINTS = (
    "/apply_kernel",
    "/classify",
    "/feature_maps",
    "/vit_attention",
    "/zero_shot",
    "/similarity",
    "/caption",
    "/answer",
)

# What gradio_client says when the server hides an exception's text (show_error=False). It comes
# from the client library, not the lab, and only for payloads a browser never sends.
GRADIO_HIDDEN_ERROR = "has not enabled verbose error reporting"

# Gradio's own sentence for a dropdown/radio value outside its choices (API callers only).
GRADIO_CHOICES = "Value: "

# Signs of a leaked traceback or internal detail in a message meant for a student.
LEAKS = (
    "Traceback",
    'File "',
    "site-packages",
    "/work/",
    "Exception",
    "TypeError",
    "KeyError",
    "IndexError",
    "AttributeError",
    "RuntimeError",
    "ValueError",
    "torch.",
    "tensor(",
    ", line ",
)


# ---------------------------------------------------------------------------------------------
# Liveness and messages


def assert_alive(url: str) -> None:
    """The app still serves its page (GET /) within ALIVE_TIMEOUT seconds.

    A second try is allowed: on a loaded 2-core machine one GET can lose a scheduling round to
    the test's own threads (the app runs in-process); a hung or dead app fails both."""
    try:
        response = httpx.get(url, timeout=ALIVE_TIMEOUT)
    except httpx.TimeoutException:
        response = httpx.get(url, timeout=ALIVE_TIMEOUT)
    assert response.status_code == 200, f"GET / answered {response.status_code}"


def assert_clear(message: str | None, *, fault_ok: bool = False) -> str:
    """`message` is one short plain sentence for a student: no traceback, no internals."""
    assert message, "the user got an empty error"
    text = str(message)
    leaked = [sign for sign in LEAKS if sign in text]
    assert not leaked, f"the message leaks {leaked}: {text!r}"
    if not text.startswith(GRADIO_CHOICES):  # Gradio lists every choice; only scripts see it
        assert len(text) < 600, f"the message is too long to read: {text[:200]!r}…"
    assert GRADIO_HIDDEN_ERROR not in text, f"a bare exception reached Gradio: {text!r}"
    if not fault_ok:
        assert text != FAULT, "bad input was treated as a crash of the lab (see the server log)"
    return text


# ---------------------------------------------------------------------------------------------
# Endpoints, described by the app itself


def endpoints(client) -> dict[str, dict]:
    """The app's named public endpoints and their parameter descriptions."""
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def photo_parameter(info: dict) -> str | None:
    """The name of an endpoint's photo parameter (the first single-file input), if any."""
    for parameter in info["parameters"]:
        python_type = parameter.get("python_type", {}).get("type")
        if parameter.get("component") == "File" and python_type == "filepath":
            return parameter["parameter_name"]
    return None


def photo_endpoints(client) -> list[str]:
    """Every public endpoint that takes the lab's photo, in a stable order."""
    return sorted(name for name, info in endpoints(client).items() if photo_parameter(info))


def required_arguments(info: dict) -> dict[str, Any]:
    """Values for parameters without a default (e.g. an optional extra-uploads list)."""
    return {
        p["parameter_name"]: None for p in info["parameters"] if not p.get("parameter_has_default")
    }


# The test world has real weights for MobileNetV2 only (other CNNs are not on disk) and tiny
# transformers (3 layers): these values keep an endpoint's defaults inside that world.
TEST_CNN = "mobilenet_v2"
# The Similarity endpoint uses the lab's photo only when "your photo" is ticked.
TEST_WORLD = {
    "/vit_attention": {"layer": 1},
    "/similarity": {"picked": ["your photo", "chelsea"]},
}


def world_values(api_name: str, info: dict) -> dict[str, Any]:
    values = dict(TEST_WORLD.get(api_name, {}))
    for parameter in info["parameters"]:
        schema = parameter.get("type", {})  # a list of choices, or free text with examples
        if TEST_CNN in (schema.get("enum") or schema.get("examples") or ()):
            values[parameter["parameter_name"]] = TEST_CNN
    return values


def arguments(client, api_name: str, photo: Any = None, /, **values) -> dict[str, Any]:
    """Keyword arguments for `api_name`: `photo` (a path, or a raw FileData dict), `values`,
    None where a parameter has no default; gradio_client fills in the other defaults."""
    info = endpoints(client)[api_name]
    kwargs = required_arguments(info) | world_values(api_name, info)
    name = photo_parameter(info)
    if photo is not None and name is not None:  # /train_clip, for one, takes no photo
        kwargs[name] = handle_file(str(photo)) if isinstance(photo, (str, Path)) else photo
    kwargs.update(values)
    return kwargs


def predict(client, api_name: str, photo: Any = None, /, **values) -> Any:
    """Call `api_name` and wait for its result (see `arguments`)."""
    return client.predict(api_name=api_name, **arguments(client, api_name, photo, **values))


def submit(client, api_name: str, photo: Any = None, /, **values):
    """Start `api_name` without waiting: a gradio_client Job."""
    return client.submit(api_name=api_name, **arguments(client, api_name, photo, **values))


def refusal(client, url: str, api_name: str, photo: Any = None, /, **values) -> str:
    """Call an endpoint that must refuse: return the user's message after checking it is clear
    and that the app is still alive."""
    try:
        result = predict(client, api_name, photo, **values)
    except AppError as error:
        message = error.message
    else:
        raise AssertionError(f"{api_name} accepted what it should refuse; it returned {result!r}")
    assert_alive(url)
    return assert_clear(message)


def outcome(
    client, url: str, api_name: str, photo: Any = None, /, **values
) -> tuple[Any, str | None]:
    """(result, None) on success or (None, clear message) on refusal; the app must stay alive."""
    try:
        result = predict(client, api_name, photo, **values)
    except AppError as error:
        assert_alive(url)
        return None, assert_clear(error.message)
    assert_alive(url)
    return result, None


def image_file(path: str | dict | None) -> Image.Image:
    """An image an endpoint returned (gradio_client gives a local path)."""
    if isinstance(path, dict):
        path = path.get("path") or path.get("value")
    assert path, "no image came back"
    with Image.open(path) as image:
        return image.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Files a student (or an attacker) might upload


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_pixels(data: bytes | Image.Image) -> np.ndarray:
    """The RGB pixels of PNG bytes (a widget's picture) or of an image, to compare exactly."""
    image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
    return np.asarray(image.convert("RGB"))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width×height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * 64) * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> Image.Image:
    return Image.new("RGB", size, colour)


def noise_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A distinct photo per seed (so no per-image cache can answer for it)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


def animated_gif(colours: list[tuple[int, int, int]]) -> bytes:
    frames = [solid(c) for c in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def multipage_tiff(colours: list[tuple[int, int, int]]) -> bytes:
    pages = [solid(c) for c in colours]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def exif_rotated_jpeg() -> bytes:
    """A 60×30 JPEG (red left half, blue right half) tagged orientation 6: shown as 30×60,
    red on top (a phone held upright)."""
    image = Image.new("RGB", (60, 30), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def mode_images() -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """Every awkward pixel mode, each as file bytes and the RGB colour the lab must see."""
    transparent = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red
    p = Image.new("P", (40, 30), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 1
    la = Image.new("LA", (40, 30), (0, 0))
    one = Image.new("1", (40, 30), 1)
    i16 = Image.fromarray(np.full((30, 40), 32896, dtype=np.uint16))  # 50 % grey in 16 bits
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in ink
    return {
        "RGBA": (encode(transparent, "PNG"), (255, 255, 255)),
        "P with transparency": (encode(p, "PNG", transparency=1), (255, 255, 255)),
        "LA": (encode(la, "PNG"), (255, 255, 255)),
        "1-bit": (encode(one, "PNG"), (255, 255, 255)),
        "I;16": (encode(i16, "PNG"), (128, 128, 128)),
        "CMYK": (encode(cmyk, "TIFF"), (255, 0, 0)),
    }


NOT_IMAGES: dict[str, tuple[str, bytes]] = {
    "SVG": ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
    "PDF": ("slides.pdf", encode(solid((9, 9, 9)), "PDF")),
    "EPS": ("figure.eps", encode(solid((9, 9, 9)), "EPS")),
    "FITS": (
        "galaxy.fits",
        b"".join(
            card.ljust(80)
            for card in (
                b"SIMPLE  =                    T",
                b"BITPIX  =                    8",
                b"NAXIS   =                    2",
                b"NAXIS1  =                    4",
                b"NAXIS2  =                    4",
                b"END",
            )
        ).ljust(2880)
        + bytes(2880),
    ),
    "PSD": (
        "layers.psd",
        b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 4, 4, 8, 3) + bytes(64),
    ),
}


# ---------------------------------------------------------------------------------------------
# Watching the server from outside


@dataclass
class Recorder:
    """A loopback HTTP server that counts requests: proof that nobody fetched its URL."""

    hits: list[str] = field(default_factory=list)
    url: str = ""


@contextlib.contextmanager
def loopback_recorder() -> Iterator[Recorder]:
    """Serve a PNG on 127.0.0.1 and record every request; stops when the block ends."""
    recorder = Recorder()
    body = encode(solid((255, 0, 0)), "PNG")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            recorder.hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rss() -> int:
    """This process's resident memory in bytes (the in-process app included)."""
    return psutil.Process(os.getpid()).memory_info().rss


def peak_rss_during(action: Callable[[], Any], every: float = 0.002) -> tuple[Any, int, int]:
    """Run `action`, sampling RSS meanwhile: (its result or exception, RSS before, peak RSS)."""
    before = rss()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        try:
            result: Any = action()
        except Exception as error:  # noqa: BLE001 - handed back for the caller to inspect
            result = error
    finally:
        done.set()
        sampler.join(timeout=5)
    return result, before, max(peak[0], rss())


def call_raw(url: str, client, api_name: str, photo: Any = None, /, **values) -> tuple[str, Any]:
    """Call `api_name` over bare HTTP (the REST `call` API), sending `photo` exactly as given —
    no client-side upload. Returns ("complete", outputs) or ("error", message)."""
    info = endpoints(client)[api_name]
    values = world_values(api_name, info) | values
    data = []
    for parameter in info["parameters"]:
        name = parameter["parameter_name"]
        if name in values:
            data.append(values[name])
        elif photo is not None and name == photo_parameter(info):
            data.append(photo)
        else:
            data.append(parameter.get("parameter_default"))
    base = f"{url}gradio_api/call{api_name}"
    started = httpx.post(base, json={"data": data}, timeout=30)
    started.raise_for_status()
    event = "error"
    with httpx.stream("GET", f"{base}/{started.json()['event_id']}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = line.split(":", 1)[1].strip()
                return event, json.loads(payload) if payload else None
    return "error", None
