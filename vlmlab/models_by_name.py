"""Models by name: "let me look inside *my* model". Beside the curated registry, the CNN, ViT and
CLIP tabs take any torchvision classifier by builder name or any compatible Hugging Face id,
checked before anything big is downloaded.

A public Space is a public API, so an id is accepted only when:
  * it is an `org/name` string (no web address, no file path);
  * its config's `model_type` is in the tab's allow-list, and the config asks for no remote code
    (the lab never passes `trust_remote_code`);
  * its weights fit under a size cap, read from the local cache or the Hub's file metadata
    (configurable, 2 GB by default);
  * models by name are switched on (`--models any`; a Space defaults to `--models curated`).
Torchvision names come only from torchvision's own list of classification models.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from vlmlab.errors import LabError, ModelUnavailableError
from vlmlab.models import ModelSpec, unknown_model_message

# model_type (from config.json) -> how the lab loads it, per topic.
HF_ALLOWED: dict[str, dict[str, str]] = {
    "vit": {
        "vit": "vit",
        "deit": "vit",
        "dinov2": "vit",
        "dinov2_with_registers": "vit",
        "beit": "vit",
        "vit_msn": "vit",
        "clip": "clip",  # the vision tower of a CLIP model
        "siglip": "siglip",  # the vision tower of a SigLIP model
    },
    "clip": {"clip": "clip", "siglip": "siglip"},
}
FAMILIES = {  # what a user reads about each model_type
    "vit": "ViT",
    "deit": "DeiT",
    "dinov2": "DINOv2",
    "dinov2_with_registers": "DINOv2 with registers",
    "beit": "BEiT",
    "vit_msn": "ViT-MSN",
    "clip": "CLIP",
    "siglip": "SigLIP",
}
# Torchvision classifiers that are not CNNs: the CNN tab's layers and Grad-CAM need conv maps.
NOT_CNN_PREFIXES = ("vit_", "swin_", "maxvit")
DEFAULT_MAX_DOWNLOAD_MB = 2048
_HUB_TIMEOUT_S = 4.0  # one metadata request; the whole check stays within 5 s
# The weight files transformers loads (safetensors first), not extra copies for other libraries.
_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_PICKLES = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


# ---------------------------------------------------------------------------------------------
# The deployment switch


@dataclass(frozen=True)
class ByNamePolicy:
    """Whether models by name are on here, and the largest download they may need."""

    enabled: bool
    max_download_mb: float


def _default_policy() -> ByNamePolicy:
    mode = os.environ.get("VLMLAB_MODELS", "").strip().lower()
    if mode not in ("", "curated", "any"):
        raise LabError(f"VLMLAB_MODELS must be curated or any, not {mode[:20]!r}.")
    enabled = mode == "any" if mode else not os.environ.get("SPACE_ID")  # a Space: curated
    cap = os.environ.get("VLMLAB_MAX_DOWNLOAD_MB", "").strip()
    try:
        max_mb = float(cap) if cap else DEFAULT_MAX_DOWNLOAD_MB
    except ValueError:
        raise LabError(
            f"VLMLAB_MAX_DOWNLOAD_MB must be a number of megabytes, not {cap!r}."
        ) from None
    return ByNamePolicy(enabled, max_mb)


_policy: ByNamePolicy | None = None


def policy() -> ByNamePolicy:
    global _policy
    if _policy is None:
        _policy = _default_policy()
    return _policy


def set_policy(models: str | None = None, max_download_mb: float | None = None) -> ByNamePolicy:
    """`models`: "curated" (only the registry) or "any" (models by name too); the size cap in MB."""
    current = policy()
    if models is not None and models not in ("curated", "any"):
        raise LabError(f"--models must be curated or any, not {str(models)[:20]!r}.")
    if max_download_mb is not None and not max_download_mb > 0:
        raise LabError("The size cap must be a positive number of megabytes.")
    global _policy
    _policy = ByNamePolicy(
        current.enabled if models is None else models == "any",
        current.max_download_mb if max_download_mb is None else float(max_download_mb),
    )
    return _policy


# ---------------------------------------------------------------------------------------------
# Accepting a name


_accepted: dict[str, ModelSpec] = {}  # name -> spec, for ids that passed every check
_sizes: dict[str, float] = {}  # name -> its weights in MB, checked again if the cap changes
_accepting = threading.Lock()


def accepted() -> dict[str, ModelSpec]:
    """The models by name accepted so far (looked up without a topic, e.g. for a title)."""
    return _accepted


def custom_spec(name: str, topic: str) -> ModelSpec:
    """A `ModelSpec` for a model the user named, or a `LabError` sentence saying why not.

    Reads only small things: torchvision's list and weights metadata, or a config.json and the
    file sizes (from the local cache, else from the Hub). Nothing big is downloaded or loaded.
    """
    if not policy().enabled:
        raise LabError(
            unknown_model_message(name, topic)[:-1]
            + "; models by name are switched off here (--models curated)."
        )
    spec = _accepted.get(name)
    if spec is not None and topic in spec.topics:
        _check_size(name, _sizes.get(name, spec.download_mb))  # the cap may have changed since
        return spec
    text = name.strip()
    if topic == "cnn":
        spec, size_mb = _torchvision_spec(text)
    else:
        spec, size_mb = _hugging_face_spec(text, topic)
    with _accepting:
        _accepted[spec.name] = spec
        _sizes[spec.name] = size_mb
    return spec


def _torchvision_spec(name: str) -> tuple[ModelSpec, float]:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)  # classifiers only
    if name not in known:
        raise LabError(
            unknown_model_message(name, "cnn")[:-1]
            + ", or a torchvision classifier by its builder name (efficientnet_b0, convnext_tiny,"
            " regnet_y_400mf, densenet121, …)."
        )
    if name.startswith(NOT_CNN_PREFIXES):
        raise LabError(
            f"{name} is a transformer, not a CNN: the CNN tab needs convolutional feature maps; "
            "look at Vision Transformers in the ViT tab."
        )
    weights = torchvision.models.get_model_weights(name)
    meta = getattr(weights, "IMAGENET1K_V1", weights.DEFAULT).meta
    size_mb = float(meta.get("_file_size", meta["num_params"] * 4 / 2**20))
    _check_size(name, size_mb)
    title = f"{name} (torchvision, {meta['num_params'] / 1e6:.1f} M parameters)"
    checkpoint = os.path.basename(getattr(weights, "IMAGENET1K_V1", weights.DEFAULT).url)
    spec = ModelSpec(name, ("cnn",), "torchvision", title, round(size_mb), checkpoint, by_name=True)
    return spec, size_mb


def _hugging_face_spec(name: str, topic: str) -> tuple[ModelSpec, float]:
    if "/" not in name and "\\" not in name and ":" not in name and not name.startswith(("~", ".")):
        families = ", ".join(dict.fromkeys(FAMILIES[t] for t in HF_ALLOWED[topic]))
        raise LabError(
            unknown_model_message(name, topic)[:-1]
            + f", or a Hugging Face id like org/name of a {families} model."
        )
    check_hub_id(name)
    config, size_mb = _config_and_size(name)
    if "auto_map" in config or config.get("trust_remote_code"):
        raise LabError(
            f"{name} needs its own code to run (its config asks for remote code); the lab "
            "never runs code from a model repository."
        )
    model_type = str(config.get("model_type", ""))
    allowed = HF_ALLOWED[topic]
    if model_type not in allowed:
        families = ", ".join(dict.fromkeys(FAMILIES[t] for t in allowed))
        raise LabError(
            f"{name} is a {model_type or 'model of unknown type'} model; the {topic.upper()} "
            f"tab takes {families} models."
        )
    _check_size(name, size_mb)
    topics = tuple(t for t in ("clip", "vit") if model_type in HF_ALLOWED[t])
    title = f"{name.split('/')[1]} ({FAMILIES[model_type]})"
    spec = ModelSpec(name, topics, allowed[model_type], title, round(size_mb), by_name=True)
    return spec, size_mb


def check_hub_id(name: str) -> None:
    """An `org/name` Hugging Face id, or a `LabError`: never a web address or a file path."""
    if "://" in name or name.lower().startswith(("www.", "huggingface.co", "hf.co")):
        raise LabError(
            "Type a model id like org/name (e.g. facebook/dinov2-small), not a web address."
        )
    if name.startswith(("/", ".", "~", "\\")) or "\\" in name or name.count("/") > 1:
        raise LabError(
            "Type a Hugging Face model id like org/name (e.g. facebook/dinov2-small), "
            "not a file path."
        )
    if not _ID.match(name) or ".." in name or "--" in name or name.endswith(".git"):
        raise LabError(
            f"{name[:80]!r} is not a Hugging Face model id; type one like org/name "
            "(e.g. facebook/dinov2-small)."
        )


def _check_size(name: str, size_mb: float) -> None:
    cap = policy().max_download_mb
    if size_mb > cap:
        raise LabError(
            f"{name} is {size_mb:,.0f} MB, over this lab's limit of {cap:,.0f} MB for models by "
            "name; pick a smaller one."
        )


def _config_and_size(name: str) -> tuple[dict, float]:
    """config.json and the weights' size in MB, from the cache if it is there, else the Hub."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(name, "config.json")
    if isinstance(path, str):
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        files = {p.name: p.stat().st_size for p in Path(path).parent.iterdir() if p.is_file()}
        return config, _weights_mb(files)
    from vlmlab.models import _hf_endpoint, offline_switch, reachable

    how = f"Fetch it once where there is a network: python -m vlmlab.models download {name}."
    switch = offline_switch()
    if switch:
        raise ModelUnavailableError(
            f"{name} is not on this machine and {switch} is set, so the lab cannot look it up. "
            f"{how}"
        )
    if not reachable(_hf_endpoint()):
        raise ModelUnavailableError(
            f"{name} is not on this machine and the Hugging Face Hub cannot be reached. {how}"
        )
    return _hub_config_and_size(name)


def _hub_config_and_size(name: str) -> tuple[dict, float]:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(name, files_metadata=True, timeout=_HUB_TIMEOUT_S)
        files = {s.rfilename: s.size or 0 for s in info.siblings or ()}
        if "config.json" not in files:
            raise LabError(f"{name} has no config.json, so the lab cannot tell what model it is.")
        size_mb = _weights_mb(files)
        _check_size(name, size_mb)  # before anything else is fetched
        config_path = hf_hub_download(name, "config.json", etag_timeout=_HUB_TIMEOUT_S)
        return json.loads(Path(config_path).read_text(encoding="utf-8")), size_mb
    except GatedRepoError:
        raise LabError(
            f"{name} is gated on the Hugging Face Hub; the lab takes open models."
        ) from None
    except RepositoryNotFoundError:
        raise LabError(f"There is no model called {name} on the Hugging Face Hub.") from None
    except (OSError, ValueError) as error:
        if isinstance(error, LabError):
            raise
        raise ModelUnavailableError(
            f"The Hugging Face Hub did not answer about {name} ({type(error).__name__}); "
            "try again in a moment."
        ) from None


def _weights_mb(files: dict[str, int]) -> float:
    """What transformers would download: the safetensors weights, else the pickled ones."""
    chosen = [size for f, size in files.items() if _SAFETENSORS.match(f)]
    if not chosen:
        chosen = [size for f, size in files.items() if _PICKLES.match(f)]
    return sum(chosen) / 2**20


# ---------------------------------------------------------------------------------------------
# What the lab found in a model (the tabs show it under "your own model")


def describe_found(name: str, topic: str, image=None, *, pretrained: bool = True) -> list[str]:
    """Sentences on what the lab read from the model: layers, patch grid, special tokens, scoring.

    CNN: from its structure alone (nothing loaded). ViT: one forward on `image` (tokens counted
    from the model's output). CLIP: the loaded model's scoring and text length.
    """
    from vlmlab.models import get_spec

    spec = get_spec(name, topic)
    if topic == "cnn":
        from vlmlab.cnn.depth import depth_row
        from vlmlab.cnn.layers import architecture

        arch, row = architecture(spec.name), depth_row(spec.name)
        evidence = arch.layer_at(arch.evidence_layer).name
        return [
            f"{spec.title}: {len(arch.layers)} layers with feature maps "
            f"({', '.join(arch.names[:4])}, … {arch.names[-1]}), {row.depth} weight layers deep, "
            f"{arch.input_size}×{arch.input_size} input.",
            f"Grad-CAM looks at {evidence}; {row.parameters / 1e6:.1f} M parameters, "
            f"{row.gflops:g} GFLOPs, ImageNet top-1 {row.top1:g}%.",
        ]
    if topic == "vit":
        from vlmlab import vit

        if image is None:
            raise LabError("Please pick a photo first: the lab counts a model's tokens on it.")
        inspection = vit.inspect_vit(image, spec.name, pretrained=pretrained)
        special = ", ".join(inspection.special_tokens) or "none (no CLS token)"
        return [
            vit.describe_model(inspection),
            f"Patch grid {inspection.grid[0]}×{inspection.grid[1]} of {inspection.patch_size}×"
            f"{inspection.patch_size} pixels; special tokens before the patches: {special}.",
        ]
    from vlmlab import clip
    from vlmlab.clip.prompts import token_limit
    from vlmlab.models import load_model

    loaded = load_model(spec.name, topic="clip", pretrained=pretrained)
    vision = loaded.model.config.vision_config
    grid = vision.image_size // vision.patch_size
    if clip.scoring_of(loaded) == clip.SIGMOID:
        scoring = (
            "SigLIP scoring: a sigmoid for each label on its own (texts padded to "
            f"{token_limit(loaded)} tokens, as it was trained)."
        )
    else:
        scoring = (
            f"CLIP scoring: a softmax over the labels (texts up to {token_limit(loaded)} tokens)."
        )
    return [
        f"{spec.title}: images of {vision.image_size}×{vision.image_size} pixels in a "
        f"{grid}×{grid} grid of {vision.patch_size}-pixel patches, "
        f"{vision.num_hidden_layers} vision layers.",
        scoring,
    ]
