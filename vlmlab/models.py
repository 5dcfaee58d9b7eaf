"""Every model the lab offers, by topic, and the one place that loads them.

Loading is lazy, once per (model, device, attention implementation), thread-safe, and honours
HF_HOME, HF_HUB_OFFLINE and TORCH_HOME. A model that cannot be had fails fast with a message
that names it and says how to get it: whether it is here is decided from the local caches and
the offline switches before any hub call.

Fetch models before a lecture, or see what is here (`make models`, `make models status`):

    python -m vlmlab.models status
    python -m vlmlab.models download [NAMES…]
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from vlmlab.errors import LabError, ModelUnavailableError

if TYPE_CHECKING:  # torch is imported where models load, so `status` answers in a blink
    import torch

Progress = Callable[..., Any]  # called as progress(fraction, desc=...), like gr.Progress


@dataclass(frozen=True)
class ModelSpec:
    """One choice in the registry."""

    name: str  # a torchvision builder name or a Hugging Face model id
    topics: tuple[str, ...]  # the tabs that offer it: cnn, vit, clip, captioning, vqa
    kind: str  # how it loads: torchvision, vit, clip, blip-caption, blip-vqa, vilt
    title: str  # what a user reads in a dropdown
    download_mb: int  # rough size of a first download, for the progress message
    checkpoint: str = ""  # torchvision's weights file (tests check it against torchvision)
    by_name: bool = False  # typed by a user (vlmlab/models_by_name.py), not in the registry


REGISTRY: tuple[ModelSpec, ...] = (
    # torchvision CNNs: name, tabs, loader, title, download MB, weights file
    ModelSpec("alexnet", ("cnn",), "torchvision", "AlexNet (2012, 8 layers)", 233,
              "alexnet-owt-7be5be79.pth"),
    ModelSpec("vgg16", ("cnn",), "torchvision", "VGG-16 (2014, 16 layers)", 528,
              "vgg16-397923af.pth"),
    ModelSpec("vgg19", ("cnn",), "torchvision", "VGG-19 (2014, 19 layers)", 548,
              "vgg19-dcbb9e9d.pth"),
    ModelSpec("resnet50", ("cnn",), "torchvision", "ResNet-50 (2015, 50 layers)", 98,
              "resnet50-0676ba61.pth"),
    ModelSpec("resnet152", ("cnn",), "torchvision", "ResNet-152 (2015, 152 layers)", 230,
              "resnet152-394f9c45.pth"),
    ModelSpec("mobilenet_v2", ("cnn",), "torchvision", "MobileNetV2 (2018, phones)", 14,
              "mobilenet_v2-b0353104.pth"),
    ModelSpec("google/vit-base-patch16-224", ("vit",), "vit", "ViT-B/16 (ImageNet classifier)", 346),
    ModelSpec("facebook/dino-vitb16", ("vit",), "vit", "DINO ViT-B/16 (self-supervised)", 343),
    ModelSpec("openai/clip-vit-base-patch32", ("clip", "vit"), "clip", "CLIP ViT-B/32", 605),
    ModelSpec("openai/clip-vit-base-patch16", ("clip", "vit"), "clip", "CLIP ViT-B/16", 599),
    ModelSpec("openai/clip-vit-large-patch14", ("clip", "vit"), "clip", "CLIP ViT-L/14", 1710),
    ModelSpec(
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        ("clip", "vit"),
        "clip",
        "OpenCLIP ViT-B/32 (LAION-2B)",
        605,
    ),
    ModelSpec(
        "Salesforce/blip-image-captioning-base", ("captioning",), "blip-caption", "BLIP base", 990
    ),
    ModelSpec(
        "Salesforce/blip-image-captioning-large", ("captioning",), "blip-caption", "BLIP large", 1880
    ),
    ModelSpec(
        "dandelin/vilt-b32-finetuned-vqa", ("vqa",), "vilt", "ViLT (picks from 3,129 answers)", 470
    ),
    ModelSpec("Salesforce/blip-vqa-base", ("vqa",), "blip-vqa", "BLIP VQA (writes answers)", 1540),
)

DEFAULTS: dict[str, str] = {
    "cnn": "alexnet",
    "vit": "google/vit-base-patch16-224",
    "clip": "openai/clip-vit-base-patch32",
    "captioning": "Salesforce/blip-image-captioning-base",
    "vqa": "dandelin/vilt-b32-finetuned-vqa",
}

_BY_NAME = {spec.name: spec for spec in REGISTRY}


def choices(topic: str) -> list[str]:
    """The model names a tab offers, its default first."""
    names = [spec.name for spec in REGISTRY if topic in spec.topics]
    return sorted(names, key=lambda name: name != DEFAULTS[topic])


def default_model(topic: str) -> str:
    return DEFAULTS[topic]


def get_spec(name: str, topic: str | None = None) -> ModelSpec:
    """The registry entry for `name`, or a model by name that passed `custom_spec`'s checks,
    or a `LabError` listing what the topic offers."""
    spec = _BY_NAME.get(name) if isinstance(name, str) else None
    if spec is not None and (topic is None or topic in spec.topics):
        return spec
    if isinstance(name, str):
        if topic is None and name in _custom_by_name():
            return _custom_by_name()[name]
        if topic in BY_NAME_TOPICS:
            from vlmlab.models_by_name import custom_spec

            return custom_spec(name, topic)
    raise LabError(unknown_model_message(name, topic))


def unknown_model_message(name, topic: str | None) -> str:
    offered = choices(topic) if topic else [s.name for s in REGISTRY]
    return f"Unknown model {str(name)[:80]!r}; choose one of: {', '.join(offered)}."


# Topics whose models may also be given by name (see vlmlab/models_by_name.py).
BY_NAME_TOPICS = ("cnn", "vit", "clip")


def _custom_by_name() -> dict:
    from vlmlab.models_by_name import accepted

    return accepted()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with what it needs around it."""

    spec: ModelSpec
    model: torch.nn.Module  # in eval mode, on `device`, in `dtype`
    processor: Any  # a transformers processor, or a torchvision transform
    device: torch.device
    dtype: torch.dtype
    weights: Any = None  # torchvision's weights enum (categories, metrics) for CNNs
    pretrained: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        """Which model, where, in what precision: the model half of per-model cache keys."""
        return (self.spec.name, str(self.device), str(self.dtype), self.pretrained)

    def to_device(self, batch):
        """Move a tensor or a dict of tensors to the model's device (floats to its dtype)."""
        import torch

        if isinstance(batch, torch.Tensor):
            dtype = self.dtype if batch.is_floating_point() else None
            return batch.to(self.device, dtype=dtype)
        return {key: self.to_device(value) for key, value in dict(batch).items()}


# Kinds whose one checkpoint serves several views: the CLIP tab's scores, its relevance maps and
# the ViT tab's attention maps. Eager attention gives every one of them what it needs, so such a
# model loads once, with eager attention, whichever tab asks first, and all of them share it.
ONE_COPY_KINDS = ("clip", "siglip")

_loaded: dict[tuple, LoadedModel] = {}  # least recently used first
_locks: dict[tuple, threading.Lock] = {}
_registry_lock = threading.Lock()
_lru_lock = threading.Lock()
DEFAULT_MAX_LOADED = 12
_max_loaded: int | None = None


def max_loaded_models() -> int:
    """How many models may be in memory at once (VLMLAB_MAX_LOADED_MODELS, default 12); past
    it the least recently used one is dropped (a Space has 16 GB)."""
    global _max_loaded
    if _max_loaded is None:
        value = os.environ.get("VLMLAB_MAX_LOADED_MODELS", "").strip()
        if value and not (value.isdigit() and int(value) >= 1):
            raise LabError(f"VLMLAB_MAX_LOADED_MODELS must be a whole number ≥ 1, not {value!r}.")
        _max_loaded = int(value) if value else DEFAULT_MAX_LOADED
    return _max_loaded


def set_max_loaded_models(count: int) -> None:
    """The loaded-model budget; models past it are dropped, least recently used first."""
    global _max_loaded
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LabError("The number of loaded models must be a whole number ≥ 1.")
    _max_loaded = count
    with _lru_lock:
        evicted = _evict()
    _release(evicted)


def _touch(key: tuple) -> LoadedModel | None:
    """The loaded model under `key`, marked as just used; None if it is not in memory."""
    with _lru_lock:
        found = _loaded.pop(key, None)
        if found is not None:
            _loaded[key] = found
        return found


def _admit(key: tuple, loaded: LoadedModel) -> None:
    with _lru_lock:
        _loaded[key] = loaded
        evicted = _evict()
    _release(evicted)


def _evict() -> list[LoadedModel]:
    """Drop least recently used models past the budget (callers still holding one keep it)."""
    evicted = []
    while len(_loaded) > max_loaded_models():
        evicted.append(_loaded.pop(next(iter(_loaded))))
    return evicted


_releasers: list[Callable[[LoadedModel], None]] = []


def on_evict(release: Callable[[LoadedModel], None]) -> Callable[[LoadedModel], None]:
    """Register `release(loaded)`, called when a model leaves the budget: a module that keeps
    objects sharing a model's weights (a feature extractor, a graph module) forgets them there,
    so the evicted model's memory is really freed. Usable as a decorator."""
    _releasers.append(release)
    return release


def _release(evicted: list[LoadedModel]) -> None:
    for loaded in evicted:
        for release in _releasers:
            release(loaded)


def load_model(
    name: str,
    *,
    topic: str | None = None,
    device: torch.device | str | None = None,
    attn_implementation: str | None = None,
    pretrained: bool = True,
    progress: Progress | None = None,
) -> LoadedModel:
    """The model `name` from the registry, loaded on first use and shared afterwards.

    `attn_implementation="eager"` gives a copy whose attentions can be returned (ViT tab);
    CLIP-family models load so unless asked otherwise (`ONE_COPY_KINDS`): one object serves
    the CLIP and ViT tabs alike. `pretrained=False` builds the same architecture with random weights
    (benchmarks, tests).
    """
    import torch

    from vlmlab.device import default_device, dtype_for, fit_cpu_threads

    spec = get_spec(name, topic)
    if spec.kind in ONE_COPY_KINDS and attn_implementation is None:
        attn_implementation = "eager"
    device = torch.device(device) if device is not None else default_device()
    key = (spec.name, str(device), dtype_for(device), attn_implementation, pretrained)
    found = _touch(key)
    if found is not None:
        return found
    with _registry_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:  # two users asking at once load it once
        found = _touch(key)
        if found is None:
            if device.type == "cpu":
                fit_cpu_threads()
            if progress is not None:
                progress(0.0, desc=f"Loading {spec.title} ({spec.name})…")
            found = _load(spec, device, attn_implementation, pretrained)
            _admit(key, found)
            if progress is not None:
                progress(1.0, desc=f"{spec.title} is ready.")
    return found


def runtime() -> tuple[str, str]:
    """Where and in what precision models load now (device, dtype): part of the cache keys of
    results computed before a model is at hand."""
    from vlmlab.device import default_device, dtype_for

    device = default_device()
    return str(device), str(dtype_for(device))


def loaded_models() -> list[LoadedModel]:
    """What is in memory now, least recently used first (for tests and memory reports)."""
    with _lru_lock:
        return list(_loaded.values())


def _load(spec: ModelSpec, device: torch.device, attn: str | None, pretrained: bool) -> LoadedModel:
    from vlmlab.device import dtype_for

    dtype = dtype_for(device)
    if spec.kind == "torchvision":
        model, processor, weights = _load_torchvision(spec, pretrained)
    else:
        model, processor = _load_transformers(spec, attn, pretrained)
        weights = None
    model = model.to(device=device, dtype=dtype).eval()
    return LoadedModel(spec, model, processor, device, dtype, weights, pretrained)


# ---------------------------------------------------------------------------------------------
# torchvision CNNs


def torchvision_weights(name: str):
    """torchvision's weights enum for a registry CNN, without loading anything: its metadata
    (categories, parameter count, GFLOPs, ImageNet accuracy) and `transforms()`."""
    import torchvision

    weights = torchvision.models.get_model_weights(get_spec(name).name)
    return getattr(weights, "IMAGENET1K_V1", None) or weights.DEFAULT


def torch_checkpoints() -> Path:
    """Where torchvision keeps downloaded weights: `torch.hub.get_dir()/checkpoints`, which
    TORCH_HOME decides (worked out without importing torch when it is not imported yet)."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def _load_torchvision(spec: ModelSpec, pretrained: bool):
    import torchvision

    weights = torchvision_weights(spec.name)
    if not pretrained:
        return torchvision.models.get_model(spec.name, weights=None), weights.transforms(), weights
    path = torch_checkpoints() / os.path.basename(weights.url)
    if not path.exists():
        _require_download(spec)
    try:
        model = torchvision.models.get_model(spec.name, weights=weights)
    except Exception as error:  # a broken download or file
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) could not be loaded from {path}: {error}. "
            "Delete the file and try again where there is a network."
        ) from None
    return model, weights.transforms(), weights


# ---------------------------------------------------------------------------------------------
# Hugging Face models

_HF_CLASSES = {
    "vit": ("AutoModel", "AutoImageProcessor"),
    "clip": ("CLIPModel", "CLIPProcessor"),
    "blip-caption": ("BlipForConditionalGeneration", "BlipProcessor"),
    "blip-vqa": ("BlipForQuestionAnswering", "BlipProcessor"),
    "vilt": ("ViltForQuestionAnswering", "ViltProcessor"),
    "siglip": ("SiglipModel", "SiglipProcessor"),
}


def _load_transformers(spec: ModelSpec, attn: str | None, pretrained: bool):
    # Decide from the local cache and the offline switches first, before even importing
    # transformers: nothing may wait on the hub for a model that is not here (the ViT class
    # lookup below reads the config too).
    if not pretrained:
        # Full-size architecture with random weights: only the (small) config and processor
        # files must be at hand; compute costs what the real model costs.
        cached = _hf_file("config.json", spec.name) is not None
    else:
        cached = hf_snapshot(spec.name) is not None
    if not cached:
        _require_download(spec)
    import transformers

    model_name, processor_name = _HF_CLASSES[spec.kind]
    model_class = getattr(transformers, model_name)
    processor_class = getattr(transformers, processor_name)
    if spec.kind == "vit":
        model_class = _vit_class(spec.name, cached)
    if not pretrained:
        config = transformers.AutoConfig.from_pretrained(spec.name, local_files_only=cached)
        if attn:
            config._attn_implementation = attn
        model = model_class._from_config(config)
        processor = processor_class.from_pretrained(spec.name, local_files_only=cached)
        return model, processor
    kwargs = {"attn_implementation": attn} if attn else {}
    if model_class is transformers.AutoModel and _takes_pooling_flag(spec.name, cached):
        kwargs["add_pooling_layer"] = False  # DINO ships no pooler; don't invent a random one
    try:
        model = model_class.from_pretrained(spec.name, local_files_only=cached, **kwargs)
        processor = processor_class.from_pretrained(spec.name, local_files_only=cached)
    except OSError as error:
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) could not be loaded: {str(error).splitlines()[0]} "
            f"Download it once where there is a network (python -m vlmlab.models download "
            f"{spec.name})."
        ) from None
    return model, processor


def _vit_class(name: str, cached: bool):
    import transformers

    # The ImageNet classifier keeps its head (top-5); DINO has none and loads as a bare ViTModel.
    config = transformers.AutoConfig.from_pretrained(name, local_files_only=cached)
    for arch in config.architectures or []:
        # DeiT's distilled classifier has two heads (DeiTForImageClassificationWithTeacher):
        # load the class the checkpoint names, so neither head is left random.
        named = getattr(transformers, arch, None) if arch.isidentifier() else None
        if "ForImageClassification" in arch and getattr(named, "config_class", None) is type(
            config
        ):
            return named
    if any("ForImageClassification" in arch for arch in (config.architectures or [])):
        return transformers.AutoModelForImageClassification
    return transformers.AutoModel


def _takes_pooling_flag(name: str, cached: bool) -> bool:
    """Whether the model's bare class has an optional pooler (ViT, DeiT, BEiT; not DINOv2)."""
    import inspect

    import transformers

    config = transformers.AutoConfig.from_pretrained(name, local_files_only=cached)
    model_class = transformers.AutoModel._model_mapping.get(type(config), None)
    return model_class is not None and "add_pooling_layer" in inspect.signature(
        model_class.__init__
    ).parameters


# ---------------------------------------------------------------------------------------------
# What is on this machine (decided from the caches alone: no network, no torch)

_HF_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _hf_file(filename: str, name: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, filename)
    return Path(found) if isinstance(found, str) else None


def hf_snapshot(name: str) -> Path | None:
    """The cached snapshot folder of a Hugging Face model when its config and weights are both
    there (HF_HOME / HF_HUB_CACHE decide where), else None."""
    config = _hf_file("config.json", name)
    if config is None or not any(_hf_file(f, name) for f in _HF_WEIGHTS):
        return None
    return config.parent


def local_files(name: str) -> list[Path]:
    """The files of registry model `name` on this machine, or [] when it is not (all here)."""
    spec = get_spec(name)
    if spec.kind == "torchvision":
        path = torch_checkpoints() / spec.checkpoint
        return [path] if path.is_file() else []
    snapshot = hf_snapshot(spec.name)
    if snapshot is None:
        return []
    return [path for path in sorted(snapshot.rglob("*")) if path.is_file()]


def is_local(name: str) -> bool:
    """Whether registry model `name` loads here without a network."""
    return bool(local_files(name))


def local_size(name: str) -> int:
    """Bytes the model takes on this machine (0 when it is not here)."""
    return sum(path.stat().st_size for path in local_files(name))


# ---------------------------------------------------------------------------------------------
# The network: asked only for a model that is not here, briefly, and remembered for a while

PROBE_TIMEOUT_S = 2.0  # the most one check of a download host may take (name lookup included)
PROBE_MEMORY_S = 30.0  # a host's answer is reused this long (a hall of students asks once)
_probes: dict[tuple[str, int], tuple[float, bool]] = {}
_probes_lock = threading.Lock()


def offline_switch() -> str | None:
    """The offline switch that is on (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, VLMLAB_OFFLINE),
    or None."""
    for switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLMLAB_OFFLINE"):
        if os.environ.get(switch, "").strip().lower() in ("1", "true", "yes", "on"):
            return switch
    return None


def _hf_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else f"https://{url}")
    return parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)


def _first_hop(url: str) -> tuple[str, int]:
    """Where a download of `url` connects first: the proxy that HTTPS_PROXY / HTTP_PROXY name
    (unless NO_PROXY spares the host), else the host itself."""
    import urllib.request

    host, port = _host_port(url)
    proxy = urllib.request.getproxies().get(urlsplit(url).scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        return _host_port(proxy)
    return host, port


def reachable(url: str) -> bool:
    """Whether the host of `url` (or the proxy in between) accepts a connection within
    PROBE_TIMEOUT_S, name lookup included, which a socket timeout alone does not bound.
    Remembered for PROBE_MEMORY_S."""
    address = _first_hop(url)
    with _probes_lock:
        known = _probes.get(address)
    if known is not None and time.monotonic() - known[0] < PROBE_MEMORY_S:
        return known[1]
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=PROBE_TIMEOUT_S).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name="vlmlab-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    ok = bool(answer and answer[0])
    with _probes_lock:
        _probes[address] = (time.monotonic(), ok)
    return ok


def check_available(name: str, topic: str | None = None) -> None:
    """Whether model `name` can be had here, without loading it: its files are cached, or its
    download server answers; else the `ModelUnavailableError` loading it would raise."""
    spec = get_spec(name, topic)
    if not is_local(spec.name):
        _require_download(spec)


def first_available(topic: str, names: list[str] | tuple[str, ...] = ()) -> str:
    """The first of `names` (default: the topic's choices, its default first) that can be had
    here, e.g. MobileNetV2 offline where AlexNet's weights are missing; when none can, the
    first, whose views then say how to get it. Nothing is loaded."""
    names = list(names) or choices(topic)
    for name in names:
        try:
            check_available(name, topic)
            return name
        except ModelUnavailableError:
            continue
    return names[0]


def _require_download(spec: ModelSpec) -> None:
    """Fail fast, naming the way to get it, when `spec` is not here and cannot be downloaded."""
    if spec.kind == "torchvision":
        url = torchvision_weights(spec.name).url
        _require_network(
            spec,
            url,
            "PyTorch's download server",
            f"or copy {os.path.basename(url)} into the hub/checkpoints folder under TORCH_HOME",
        )
    else:
        _require_network(
            spec,
            _hf_endpoint(),
            "the Hugging Face Hub",
            "or point HF_HOME at a copied Hugging Face cache that holds it and set HF_HUB_OFFLINE=1",
        )


def _require_network(spec: ModelSpec, url: str, server: str, alternative: str) -> None:
    """Fail within seconds, with a way out, when a model is not here and cannot be downloaded."""
    how = (
        f"Fetch it once on a machine with a network: python -m vlmlab.models download "
        f"{spec.name} (about {spec.download_mb} MB; make models fetches every default), "
        f"{alternative}."
    )
    switch = offline_switch()
    if switch:
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) is not on this machine and {switch} is set. {how}"
        )
    if not reachable(url):
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) is not on this machine and {server} cannot be reached. "
            f"{how}"
        )


if __name__ == "__main__":  # python -m vlmlab.models status | download [NAMES…]
    from vlmlab.model_cache import main

    raise SystemExit(main())
