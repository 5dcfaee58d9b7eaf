"""The model registry and loader: lazy, shared, thread-safe, and clear when a model is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from vlmlab import models
from vlmlab.errors import LabError, ModelUnavailableError

ROOT = Path(__file__).resolve().parents[1]


def test_every_topic_offers_its_default_first():
    for topic, default in models.DEFAULTS.items():
        names = models.choices(topic)
        assert names[0] == default
        assert all(topic in models.get_spec(name).topics for name in names)
    assert models.choices("cnn") == [
        "alexnet", "vgg16", "vgg19", "resnet50", "resnet152", "mobilenet_v2"
    ]
    assert set(models.choices("clip")) <= set(models.choices("vit"))  # CLIP's vision tower


def test_unknown_or_misplaced_model_names_list_the_choices():
    with pytest.raises(LabError, match="Unknown model 'resnet9000'; choose one of: alexnet, vgg16"):
        models.get_spec("resnet9000", "cnn")
    with pytest.raises(LabError, match="Unknown model 'alexnet'; choose one of: openai/clip"):
        models.get_spec("alexnet", "clip")


def test_real_weights_load_once_even_when_users_race(monkeypatch):
    calls = []
    real_load = models._load

    def counting_load(*args):
        calls.append(args)
        return real_load(*args)

    monkeypatch.setattr(models, "_load", counting_load)
    monkeypatch.setattr(models, "_loaded", {})
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(models.load_model("mobilenet_v2")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert all(result is results[0] for result in results)
    loaded = results[0]
    assert loaded.pretrained and loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert not loaded.model.training
    assert loaded.weights.meta["categories"][281] == "tabby"


def test_progress_is_reported_while_loading(monkeypatch):
    monkeypatch.setattr(models, "_loaded", {})
    seen = []
    models.load_model("mobilenet_v2", progress=lambda f, desc=None: seen.append((f, desc)))
    assert seen[0][0] == 0.0 and "MobileNetV2" in seen[0][1]
    assert seen[-1] == (1.0, "MobileNetV2 (2018, phones) is ready.")


def test_hugging_face_models_load_from_the_offline_cache():
    loaded = models.load_model("openai/clip-vit-base-patch32", topic="clip")
    assert type(loaded.model).__name__ == "CLIPModel"
    assert type(loaded.processor).__name__ == "CLIPProcessor"
    eager = models.load_model("openai/clip-vit-base-patch32", attn_implementation="eager")
    assert eager is loaded and eager.model.config._attn_implementation == "eager"  # one CLIP
    vit = models.load_model("google/vit-base-patch16-224")
    assert type(vit.model).__name__ == "ViTForImageClassification"
    assert vit.model.config._attn_implementation != "eager"  # others: eager only when asked
    dino = models.load_model("facebook/dino-vitb16")
    assert type(dino.model).__name__ == "ViTModel"  # no classifier head, like the real DINO


def test_missing_torchvision_weights_offline_name_the_model_and_the_way_out():
    with pytest.raises(ModelUnavailableError) as caught:
        models.load_model("alexnet")
    message = str(caught.value)
    assert "AlexNet" in message and "HF_HUB_OFFLINE is set" in message
    assert "alexnet-owt-7be5be79.pth" in message and "TORCH_HOME" in message


PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def without_proxies(monkeypatch) -> None:
    """The tests decide where the network check goes, whatever proxies the machine has."""
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_missing_weights_without_network_fail_without_waiting(monkeypatch):
    without_proxies(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    attempts = []

    def no_network(address, timeout=None):
        attempts.append((address, timeout))
        raise OSError("unreachable")

    monkeypatch.setattr(models.socket, "create_connection", no_network)
    monkeypatch.setattr(models, "_probes", {})
    for _ in range(2):  # a second student within PROBE_MEMORY_S is told without a new probe
        with pytest.raises(ModelUnavailableError, match="download server cannot be reached"):
            models.load_model("vgg16")
    # one short probe, no download
    assert attempts == [(("download.pytorch.org", 443), models.PROBE_TIMEOUT_S)]


def test_the_network_check_goes_to_the_proxy_when_there_is_one(monkeypatch):
    monkeypatch.setattr(models, "_probes", {})
    attempts = []

    def refuse(address, timeout=None):
        attempts.append(address)
        raise OSError("refused")

    monkeypatch.setattr(models.socket, "create_connection", refuse)
    without_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "mirror.example")
    assert not models.reachable("https://huggingface.co")
    assert not models.reachable("https://mirror.example:8443/models")
    assert attempts == [("proxy.example", 3128), ("mirror.example", 8443)]


def test_random_weights_build_the_full_architecture_without_any_file():
    loaded = models.load_model("resnet50", pretrained=False)
    assert not loaded.pretrained
    assert sum(p.numel() for p in loaded.model.parameters()) == loaded.weights.meta["num_params"]


def test_an_uncached_hugging_face_model_fails_fast_with_a_clear_message(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hub"))
    code = (
        "from vlmlab.models import load_model\n"
        "try:\n    load_model('Salesforce/blip-image-captioning-base')\n"
        "except ValueError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "BLIP base (Salesforce/blip-image-captioning-base) is not on this machine" in result.stdout
    assert "HF_HOME" in result.stdout and "HF_HUB_OFFLINE=1" in result.stdout
