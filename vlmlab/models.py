"""Every model the lab offers, by topic, and the one place that loads them.

Loading is lazy, once per (model, device, attention implementation), thread-safe, and honours
HF_HOME, HF_HUB_OFFLINE and TORCH_HOME. A model that cannot be had fails fast with a message
that names it and says how to get it.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vlmlab.device import default_device, dtype_for, fit_cpu_threads
from vlmlab.errors import LabError, ModelUnavailableError

Progress = Callable[..., Any]  # called as progress(fraction, desc=...), like gr.Progress


@dataclass(frozen=True)
class ModelSpec:
    """One choice in the registry."""

    name: str  # a torchvision builder name or a Hugging Face model id
    topics: tuple[str, ...]  # the tabs that offer it: cnn, vit, clip, captioning, vqa
    kind: str  # how it loads: torchvision, vit, clip, blip-caption, blip-vqa, vilt
    title: str  # what a user reads in a dropdown
    download_mb: int  # rough size of a first download, for the progress message


REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec("alexnet", ("cnn",), "torchvision", "AlexNet (2012, 8 layers)", 233),
    ModelSpec("vgg16", ("cnn",), "torchvision", "VGG-16 (2014, 16 layers)", 528),
    ModelSpec("vgg19", ("cnn",), "torchvision", "VGG-19 (2014, 19 layers)", 548),
    ModelSpec("resnet50", ("cnn",), "torchvision", "ResNet-50 (2015, 50 layers)", 98),
    ModelSpec("resnet152", ("cnn",), "torchvision", "ResNet-152 (2015, 152 layers)", 230),
    ModelSpec("mobilenet_v2", ("cnn",), "torchvision", "MobileNetV2 (2018, phones)", 14),
    ModelSpec("google/vit-base-patch16-224", ("vit",), "vit", "ViT-B/16 (ImageNet classifier)", 346),
    ModelSpec("facebook/dino-vitb16", ("vit",), "vit", "DINO ViT-B/16 (self-supervised)", 343),
    ModelSpec("openai/clip-vit-base-patch32", ("clip", "vit"), "clip", "CLIP ViT-B/32", 605),
    ModelSpec("openai/clip-vit-base-patch16", ("clip", "vit"), "clip", "CLIP ViT-B/16", 599),
    ModelSpec("openai/clip-vit-large-patch14", ("clip", "vit"), "clip", "CLIP ViT-L/14", 1710),
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
    """The registry entry for `name`, or a `LabError` listing what the topic offers."""
    spec = _BY_NAME.get(name)
    if spec is None or (topic is not None and topic not in spec.topics):
        offered = choices(topic) if topic else [s.name for s in REGISTRY]
        raise LabError(f"Unknown model {str(name)[:80]!r}; choose one of: {', '.join(offered)}.")
    return spec


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
        if isinstance(batch, torch.Tensor):
            dtype = self.dtype if batch.is_floating_point() else None
            return batch.to(self.device, dtype=dtype)
        return {key: self.to_device(value) for key, value in dict(batch).items()}


_loaded: dict[tuple, LoadedModel] = {}
_locks: dict[tuple, threading.Lock] = {}
_registry_lock = threading.Lock()


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

    `attn_implementation="eager"` gives a copy whose attentions can be returned (ViT tab).
    `pretrained=False` builds the same architecture with random weights (benchmarks, tests).
    """
    spec = get_spec(name, topic)
    device = torch.device(device) if device is not None else default_device()
    key = (spec.name, str(device), dtype_for(device), attn_implementation, pretrained)
    if key in _loaded:
        return _loaded[key]
    with _registry_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:  # two users asking at once load it once
        if key not in _loaded:
            if device.type == "cpu":
                fit_cpu_threads()
            if progress is not None:
                progress(0.0, desc=f"Loading {spec.title} ({spec.name})…")
            _loaded[key] = _load(spec, device, attn_implementation, pretrained)
            if progress is not None:
                progress(1.0, desc=f"{spec.title} is ready.")
    return _loaded[key]


def runtime() -> tuple[str, str]:
    """Where and in what precision models load now (device, dtype): part of the cache keys of
    results computed before a model is at hand."""
    device = default_device()
    return str(device), str(dtype_for(device))


def loaded_models() -> list[LoadedModel]:
    """What is in memory now (for tests and memory reports)."""
    return list(_loaded.values())


def _load(spec: ModelSpec, device: torch.device, attn: str | None, pretrained: bool) -> LoadedModel:
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

    return torchvision.models.get_model_weights(get_spec(name).name).IMAGENET1K_V1


def _load_torchvision(spec: ModelSpec, pretrained: bool):
    import torchvision

    weights = torchvision_weights(spec.name)
    if not pretrained:
        return torchvision.models.get_model(spec.name, weights=None), weights.transforms(), weights
    filename = os.path.basename(weights.url)
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.exists():
        _require_network(
            spec,
            "download.pytorch.org",
            f"or copy {filename} into {path.parent} (TORCH_HOME decides where that is)",
        )
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
}


def _load_transformers(spec: ModelSpec, attn: str | None, pretrained: bool):
    import transformers

    model_name, processor_name = _HF_CLASSES[spec.kind]
    model_class = getattr(transformers, model_name)
    processor_class = getattr(transformers, processor_name)
    if spec.kind == "vit":
        model_class = _vit_class(spec.name)
    if not pretrained:
        # Full-size architecture with random weights: only the (small) config and processor
        # files must be at hand; compute costs what the real model costs.
        cached = _hf_cached(spec.name)
        config = transformers.AutoConfig.from_pretrained(spec.name, local_files_only=cached)
        if attn:
            config._attn_implementation = attn
        model = model_class._from_config(config)
        processor = processor_class.from_pretrained(spec.name, local_files_only=cached)
        return model, processor
    cached = _hf_cached(spec.name)
    if not cached:
        _require_network(
            spec,
            "huggingface.co",
            "or point HF_HOME at a copied Hugging Face cache that holds it and set HF_HUB_OFFLINE=1",
        )
    kwargs = {"attn_implementation": attn} if attn else {}
    if model_class is transformers.AutoModel:
        kwargs["add_pooling_layer"] = False  # DINO ships no pooler; don't invent a random one
    try:
        model = model_class.from_pretrained(spec.name, local_files_only=cached, **kwargs)
        processor = processor_class.from_pretrained(spec.name, local_files_only=cached)
    except OSError as error:
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) could not be loaded: {str(error).splitlines()[0]} "
            f"Download it once where there is a network (huggingface-cli download {spec.name})."
        ) from None
    return model, processor


def _vit_class(name: str):
    import transformers

    # The ImageNet classifier keeps its head (top-5); DINO has none and loads as a bare ViTModel.
    config = transformers.AutoConfig.from_pretrained(name, local_files_only=_hf_cached(name))
    if any("ForImageClassification" in arch for arch in (config.architectures or [])):
        return transformers.AutoModelForImageClassification
    return transformers.AutoModel


def _hf_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("VLMLAB_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def _require_network(spec: ModelSpec, host: str, alternative: str) -> None:
    """Fail within seconds, with a way out, when a model is not here and cannot be downloaded."""
    how = (
        f"Download it once on a machine with a network (the lab does this by itself on first use, "
        f"about {spec.download_mb} MB), {alternative}."
    )
    if _offline():
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) is not on this machine and HF_HUB_OFFLINE is set. {how}"
        )
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise ModelUnavailableError(
            f"{spec.title} ({spec.name}) is not on this machine and {host} cannot be reached. {how}"
        ) from None

