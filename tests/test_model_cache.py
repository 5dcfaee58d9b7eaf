"""Models before class: `python -m vlmlab.models status | download`, on the test caches (the tiny
Hugging Face models and MobileNetV2's real weights are here; the other CNNs are not)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlmlab import model_cache, models
from vlmlab.errors import LabError

ROOT = Path(__file__).resolve().parents[1]
HERE = {spec.name for spec in models.REGISTRY if spec.kind != "torchvision"} | {"mobilenet_v2"}


def run_models(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vlmlab.models", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return result, time.perf_counter() - start


def test_status_lists_what_is_here_and_what_is_missing_offline():
    result, seconds = run_models("status")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("   ", " * "))]
    lines = {line[3:].split()[0]: line for line in rows}
    assert set(lines) == {spec.name for spec in models.REGISTRY}
    for name, line in lines.items():
        assert ("ready" if name in HERE else "missing") in line.split(), line
    assert lines["alexnet"].startswith(" * ") and "233 MB to fetch" in lines["alexnet"]
    assert lines["vgg16"].startswith("   ")  # not a default
    assert f"{len(HERE)} of {len(models.REGISTRY)} models ready here" in result.stdout
    assert "Defaults (*) missing: alexnet. Run `make models` once on a network" in result.stdout
    assert str(models.torch_checkpoints()) in result.stdout.splitlines()[0]
    print(f"\nstatus answered in {seconds:.2f} s (a fresh interpreter)")


def test_status_reads_the_caches_without_torch_or_a_network():
    code = (
        "import socket, sys\n"
        "def no_network(*args, **kwargs):\n    raise OSError('no network in this test')\n"
        "socket.create_connection = socket.getaddrinfo = no_network\n"
        "from vlmlab.model_cache import status_lines\n"
        "lines = status_lines()\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_sizes_are_those_of_the_files_here(torch_home):
    weights = torch_home / "hub" / "checkpoints" / models.get_spec("mobilenet_v2").checkpoint
    assert models.local_size("mobilenet_v2") == weights.stat().st_size > 13_000_000
    snapshot = models.hf_snapshot("openai/clip-vit-base-patch32")
    files = [p for p in snapshot.iterdir() if p.is_file()]
    assert "config.json" in {p.name for p in files}
    assert models.local_size("openai/clip-vit-base-patch32") == sum(p.stat().st_size for p in files)
    assert models.local_size("alexnet") == 0 and not models.is_local("alexnet")


def test_the_registry_names_torchvisions_own_weights_files():
    for name in models.choices("cnn"):
        url = models.torchvision_weights(name).url
        assert models.get_spec(name).checkpoint == os.path.basename(url)


def test_the_checkpoints_folder_is_torchs_own_even_before_torch_is_imported(monkeypatch):
    import torch

    expected = Path(torch.hub.get_dir()) / "checkpoints"
    monkeypatch.delitem(sys.modules, "torch")
    assert models.torch_checkpoints() == expected


def test_download_of_models_already_here_checks_them_without_the_network(monkeypatch):
    probes = []
    monkeypatch.setattr(models.socket, "create_connection", lambda *a, **k: probes.append(a))
    said: list[str] = []
    assert model_cache.download(["mobilenet_v2", "google/vit-base-patch16-224"], said.append)
    assert said[0] == "mobilenet_v2: here; checking that it loads (MobileNetV2 (2018, phones))…"
    assert said[1].startswith("mobilenet_v2: ready, loads (3.5 M parameters, 14 MB here)")
    assert said[3].startswith("google/vit-base-patch16-224: ready, loads (")
    assert probes == []


def test_download_of_a_missing_model_offline_says_why_and_reports_failure():
    said: list[str] = []
    assert not model_cache.download(["vgg16"], said.append)
    assert said[0] == "vgg16: fetching (VGG-16 (2014, 16 layers), about 528 MB)…"
    assert said[1].startswith("vgg16: NOT READY. VGG-16 (2014, 16 layers) (vgg16) is not on this")
    assert "HF_HUB_OFFLINE is set" in said[1]
    with pytest.raises(LabError, match="Unknown model 'vgg17'"):
        model_cache.download(["vgg17"], said.append)


def test_the_command_line_downloads_checks_and_lists_the_named_models():
    result, _ = run_models("download", "mobilenet_v2", "vgg16")
    assert result.returncode == 1  # vgg16 could not be had
    assert "mobilenet_v2: ready, loads" in result.stdout
    assert "vgg16: NOT READY" in result.stdout
    assert "1 of 2 models ready here" in result.stdout
    unknown, _ = run_models("download", "vgg17")
    assert unknown.returncode == 2 and "Unknown model 'vgg17'" in unknown.stderr


def test_a_spaces_background_fetch_never_raises_and_says_what_failed(monkeypatch):
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    said: list[str] = []
    thread = model_cache.fetch_in_background(["alexnet", "mobilenet_v2"], said.append)
    assert thread.daemon
    thread.join(60)
    assert not thread.is_alive()
    # MobileNetV2 is here already; AlexNet's download fails without a network, and says so.
    assert len(said) == 1 and said[0].startswith("vlmlab: could not fetch alexnet"), said
    assert not models.is_local("alexnet")
