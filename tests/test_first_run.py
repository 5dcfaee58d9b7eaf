"""A lecturer's first run: no model in any cache, no network, and no offline switch set.

The lab is started as `python app.py` in a subprocess with empty HF_HOME and TORCH_HOME,
HF_HUB_OFFLINE unset, HF_ENDPOINT at a loopback port that refuses connections, and every other
host name unresolvable (as on a machine without a network). Through gradio_client, every model
endpoint must answer at once with a sentence that names the missing model and the way to get
it; the depth table must still appear; Pixels and Convolution must work. The same for the
models' command line (`python -m vlmlab.models`) on the test caches.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from lab_api import assert_alive, assert_clear, endpoints, required_arguments

from vlmlab import models
from vlmlab.images import sample_files

ROOT = Path(__file__).resolve().parents[1]
HANG = 30.0  # seconds: only a hang detector; a missing model is told in well under 5 s
TIMES: dict[str, float] = {}  # endpoint -> seconds, printed at the end (pytest -s)

# Run app.py as `python app.py --port N` on a machine whose only network is the loopback.
NO_NETWORK_APP = """
import runpy, socket, sys
real_getaddrinfo = socket.getaddrinfo
def loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", None, ""):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return real_getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = loopback_only
sys.argv = ["app.py", "--port", sys.argv[1]]
runpy.run_path("app.py", run_name="__main__")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def bare_lab(tmp_path_factory):
    """(client, url, start-up output) of a lab with empty caches and no network."""
    home = tmp_path_factory.mktemp("bare")
    # The "hub": a bound loopback port that never listens, so every connection is refused.
    hub = socket.socket()
    hub.bind(("127.0.0.1", 0))
    env = dict(os.environ)
    for switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLMLAB_OFFLINE", "SPACE_ID"):
        env.pop(switch, None)
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):  # the check goes to the hosts
        env.pop(proxy, None)
        env.pop(proxy.lower(), None)
    env.update(
        HF_HOME=str(home / "hf"),
        HF_HUB_CACHE=str(home / "hf" / "hub"),
        TORCH_HOME=str(home / "torch"),
        HF_ENDPOINT=f"http://127.0.0.1:{hub.getsockname()[1]}",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    app = subprocess.Popen(
        [sys.executable, "-c", NO_NETWORK_APP, str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in app.stdout:
            lines.append(line)
            if "Running on local URL" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not started.wait(240):
            pytest.fail("the bare lab did not start:\n" + "".join(lines)[-3000:])
        url = f"http://127.0.0.1:{port}/"
        yield Client(url, verbose=False), url, "".join(lines)
    finally:
        app.terminate()
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
        hub.close()
        if TIMES:
            print("\nbare lab, seconds per answer:", {k: round(v, 2) for k, v in TIMES.items()})


def call(client, url: str, api_name: str, **values):
    """(result, message) of one call with the endpoint's defaults and the chelsea photo."""
    info = endpoints(client)[api_name]
    kwargs = required_arguments(info)
    for parameter in info["parameters"]:
        if parameter.get("component") == "File":
            kwargs[parameter["parameter_name"]] = handle_file(str(sample_files()["chelsea"]))
            break
    kwargs.update(values)
    start = time.perf_counter()
    try:
        result, message = client.predict(api_name=api_name, **kwargs), None
    except AppError as error:
        result, message = None, assert_clear(error.message)
    seconds = time.perf_counter() - start
    TIMES[api_name + "".join(f" {v}" for v in values.values())] = seconds
    assert seconds < HANG, f"{api_name} took {seconds:.1f} s: it waited on the network"
    assert_alive(url)
    return result, message


def says_missing(message: str | None, name: str) -> None:
    """The sentence names the model and the way to get it, and says the hub is unreachable."""
    spec = models.get_spec(name)
    assert message, f"{name}: no message"
    assert f"{spec.title} ({spec.name}) is not on this machine" in message, message
    assert "cannot be reached" in message, message  # decided without an offline switch
    assert f"python -m vlmlab.models download {spec.name}" in message, message


def test_start_up_says_which_models_are_missing(bare_lab):
    _, _, output = bare_lab
    assert f"0 of {len(models.REGISTRY)} models ready here" in output
    assert "Defaults (*) missing: alexnet, google/vit-base-patch16-224" in output
    assert "make models" in output


@pytest.mark.parametrize(
    ("api_name", "values", "model"),
    [
        ("/classify", {}, "alexnet"),
        ("/feature_maps", {}, "alexnet"),
        ("/grad_cam", {}, "alexnet"),
        ("/vit_attention", {}, "google/vit-base-patch16-224"),
        ("/vit_attention", {"model": "openai/clip-vit-base-patch32"}, "openai/clip-vit-base-patch32"),
        ("/zero_shot", {}, "openai/clip-vit-base-patch32"),
        ("/similarity", {}, "openai/clip-vit-base-patch32"),
        ("/caption", {}, "Salesforce/blip-image-captioning-base"),
        ("/answer", {}, "dandelin/vilt-b32-finetuned-vqa"),
        ("/answer", {"model": "Salesforce/blip-vqa-base"}, "Salesforce/blip-vqa-base"),
    ],
)
def test_every_model_endpoint_names_the_missing_model_at_once(bare_lab, api_name, values, model):
    client, url, _ = bare_lab
    result, message = call(client, url, api_name, **values)
    assert result is None, f"{api_name} answered without its model: {result!r}"
    says_missing(message, model)


def test_the_robustness_probe_says_in_its_notes_that_both_models_are_missing(bare_lab):
    client, url, _ = bare_lab
    result, message = call(client, url, "/robustness")
    text = message if result is None else str(result)
    assert "is not on this machine" in text and "cannot be reached" in text, text


def test_the_depth_table_appears_with_every_network_missing(bare_lab):
    client, url, _ = bare_lab
    (table, side_by_side, notes), message = call(client, url, "/compare_cnns")
    assert message is None
    assert [row[0] for row in table["data"]][:3] == [
        "AlexNet (2012, 8 layers)",
        "VGG-16 (2014, 16 layers)",
        "VGG-19 (2014, 19 layers)",
    ]
    cells = side_by_side["data"][0][1:]
    assert cells and set(cells) == {"(not on this machine)"}, side_by_side
    for name in models.choices("cnn"):
        assert f"({name}) is not on this machine" in notes


def test_pixels_and_convolution_work_without_models(bare_lab):
    client, url, _ = bare_lab
    for api_name in ("/pixel_region", "/color_space", "/apply_kernel", "/conv_layer"):
        result, message = call(client, url, api_name)
        assert message is None and result is not None, f"{api_name}: {message}"
