"""Inside an ImageNet CNN (Krizhevsky et al. 2012; the lecture's AlexNet, "What is happening?" and
"revolution of depth" slides): top-k predictions, every layer's feature maps from one forward,
the first layer's learned filters, and a depth table across AlexNet, VGG, ResNet and MobileNetV2.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import fx

from vlmlab.cache import LRUCache, photo_fingerprint
from vlmlab.checks import whole_number
from vlmlab.cnn.layers import (  # noqa: F401 - re-exported: the CNN topic's one front door
    DEFAULT_MODEL,
    TOPIC,
    Architecture,
    Layer,
    architecture,
    capture_graph,
    layer_names,
    prepare,
)
from vlmlab.device import gpu
from vlmlab.errors import LabError, ModelUnavailableError
from vlmlab.images import ImageSource, rgb_image  # rgb_image: also the widgets' and Grad-CAM's
from vlmlab.models import (
    LoadedModel,
    get_spec,
    is_local,
    load_model,
    on_evict,
    runtime,
    torchvision_weights,
)

ORDERS = ("activation", "index")  # channels by mean activation (most active first), or by number
MAX_BATCH = 16  # images per forward when classifying many at once


# Per-model keys hold where and in what precision models run (`runtime()`, `LoadedModel.key`).
_probabilities = LRUCache(256)  # cache_key(model, photo) -> (classes,) softmax
_captures = LRUCache(8)  # cache_key(model, photo) -> FeatureCapture; VGG's is ~60 MB
_extractors = LRUCache(12)  # LoadedModel.key -> feature extractor (no hooks)
_filters = LRUCache(12)  # (model, pretrained, runtime) -> Filters


@on_evict
def _release(loaded: LoadedModel) -> None:
    """An evicted model's feature extractor shares its weights: drop it with the model."""
    _extractors.forget(lambda key: key == loaded.key)

Prediction = list[tuple[str, float]]


# ---------------------------------------------------------------------------------------------
# Checks and small helpers


def cache_key(model: str, pretrained: bool, image: Image.Image) -> tuple:
    """The key of per-(model, photo) results."""
    return (model, pretrained, *runtime(), photo_fingerprint(image))


@functools.cache
def categories(model: str = DEFAULT_MODEL) -> tuple[str, ...]:
    """The class names the model predicts, from its weights' metadata (ImageNet's 1000)."""
    return tuple(torchvision_weights(get_spec(model, TOPIC).name).meta["categories"])


def check_top_k(top_k, classes: int = 1000) -> int:
    """top_k as an int from 1 to the number of classes, or a `LabError`."""
    message = f"top_k must be a whole number from 1 to {classes}; got {str(top_k)[:20]}."
    return whole_number(top_k, "top_k", 1, classes, message=message)


def first_available(models: Sequence[str], *, otherwise: str | None = None) -> str:
    """The first of `models` that can be loaded here (e.g. AlexNet, else MobileNetV2 offline);
    when none can, `otherwise` if given (its widgets then say why), else the reasons are raised."""
    reasons = []
    for name in models:
        try:
            load_model(name, topic=TOPIC)
            return name
        except ModelUnavailableError as error:
            reasons.append(str(error))
    if otherwise is not None:
        return otherwise
    raise ModelUnavailableError(" ".join(reasons) or "No model was named.")


def weights_on_machine(model: str) -> bool:
    """Whether the network's ImageNet weights are in torch's cache (nothing is loaded or fetched)."""
    return is_local(get_spec(model, TOPIC).name)


def default_choice(models: Sequence[str]) -> str:
    """The first of `models` whose weights are here (AlexNet after `make models`; MobileNetV2 on
    a machine with only that), else the first: what a dropdown should start on."""
    return next((name for name in models if weights_on_machine(name)), models[0])


# ---------------------------------------------------------------------------------------------
# Predictions


def model_input(loaded: LoadedModel, image: Image.Image) -> torch.Tensor:
    """The weights' own transforms (shorter side resized, centre crop) on `image`: (3, S, S).

    A long strip is first cut to its centre square, all that the crop keeps anyway: resizing the
    shorter side of a 2048×1 strip to 256 would otherwise build a 524288×256 image (half a GB).
    """
    width, height = image.size
    side = min(width, height)
    if max(width, height) > 2 * side:
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return loaded.processor(image)


@gpu
def _predict(model: str, images: list[Image.Image], pretrained: bool) -> np.ndarray:
    """One forward for a batch of photos: (B, classes) probabilities."""
    loaded = load_model(model, topic=TOPIC, pretrained=pretrained)
    batch = torch.stack([model_input(loaded, image) for image in images])  # (B, 3, S, S)
    with torch.inference_mode():
        logits = loaded.model(loaded.to_device(batch))  # (B, classes)
    return logits.float().softmax(dim=-1).cpu().numpy()


def probabilities(
    images: Sequence[ImageSource], model: str = DEFAULT_MODEL, *, pretrained: bool = True
) -> list[np.ndarray]:
    """Each photo's (classes,) probabilities; photos seen before are not run again."""
    name = get_spec(model, TOPIC).name
    images = [rgb_image(image) for image in images]
    keys = [cache_key(name, pretrained, image) for image in images]
    new = list({k: im for k, im in zip(keys, images) if k not in _probabilities}.items())
    found: dict[tuple, np.ndarray] = {}
    for start in range(0, len(new), MAX_BATCH):  # each new photo once, MAX_BATCH per forward
        chunk = new[start : start + MAX_BATCH]
        rows = _predict(name, [image for _, image in chunk], pretrained)
        for (key, _), row in zip(chunk, rows):
            found[key] = _probabilities.get_or_compute(key, lambda row=row: row)
    return [
        found.get(key)
        if key in found
        else _probabilities.get_or_compute(key, lambda im=im: _predict(name, [im], pretrained)[0])
        for key, im in zip(keys, images)
    ]


def top_classes(probs: np.ndarray, names: Sequence[str], top_k: int) -> Prediction:
    """The top_k (class name, probability) pairs, highest first."""
    best = np.argsort(-probs, kind="stable")[:top_k]
    return [(names[i], float(probs[i])) for i in best]


def classify_many(
    images: Sequence[ImageSource],
    models: str | Sequence[str] = DEFAULT_MODEL,
    top_k: int | Sequence[int] = 5,
    *,
    pretrained: bool = True,
) -> list[Prediction]:
    """Classify many photos, each with its own model and top_k, one forward per model.

    This is what a lecture hall's simultaneous requests go through (Gradio batches them):
    results come back in the order of `images`.
    """
    n = len(images)
    models = [models] * n if isinstance(models, str) else list(models)
    top_ks = list(top_k) if isinstance(top_k, (list, tuple)) else [top_k] * n
    if not len(models) == len(top_ks) == n:
        raise LabError("Give one model and one top_k per photo.")
    names = [get_spec(model, TOPIC).name for model in models]
    top_ks = [check_top_k(k, len(categories(name))) for k, name in zip(top_ks, names)]
    results: list[Prediction | None] = [None] * n
    for name in dict.fromkeys(names):  # one forward per model, in first-asked order
        where = [i for i in range(n) if names[i] == name]
        probs = probabilities([images[i] for i in where], name, pretrained=pretrained)
        for i, row in zip(where, probs):
            results[i] = top_classes(row, categories(name), top_ks[i])
    return results  # type: ignore[return-value]


def classify(
    image: ImageSource,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    *,
    pretrained: bool = True,
) -> Prediction:
    """The model's top_k ImageNet classes for one photo: [("tabby", 0.71), …], highest first."""
    return classify_many([image], [model], [top_k], pretrained=pretrained)[0]


# ---------------------------------------------------------------------------------------------
# Feature maps: one forward captures every layer; views re-render from the capture


@dataclass(frozen=True)
class FeatureCapture:
    """Every layer's output for one photo, from one forward pass."""

    key: tuple  # cache_key(model, photo)
    architecture: Architecture
    view: Image.Image  # what the model saw: the photo resized and centre-cropped, S×S
    maps: dict[str, np.ndarray]  # layer name -> (C, H, W) float16
    means: dict[str, np.ndarray]  # layer name -> (C,) mean activation of each channel


@dataclass(frozen=True)
class FeatureView:
    """One layer of a capture and one of its channels: what `cnn_render.draw_features` draws."""

    key: tuple  # the capture's key: drawings of the same capture are cached under it
    layer: Layer
    channel: int  # the channel shown large (its number in the layer)
    order: tuple[int, ...]  # channel numbers in grid order
    maps: np.ndarray  # (C, H, W) float16: every channel of the layer
    view: Image.Image  # what the model saw (the capture's view, under the overlay)
    caption: str
    ordering: str = "activation"  # how `order` was chosen: "activation" or "index"


def _extractor(loaded: LoadedModel) -> torch.nn.Module:
    """A graph module returning every layer's output at once, sharing the model's weights.

    It re-roots the graph torchvision's `create_feature_extractor` traced on the weightless copy
    (no hooks, no tracing now). In-place activations are swapped for out-of-place copies inside
    the extractor only, so a conv's captured output is not overwritten by the ReLU after it.
    """

    def build():
        graph = capture_graph(loaded.spec.name)
        extractor = fx.GraphModule(loaded.model, graph)  # shares the model's leaf modules
        for path, module in list(extractor.named_modules()):
            if getattr(module, "inplace", False):
                parent, _, attribute = path.rpartition(".")
                out_of_place = copy.copy(module)  # a new ReLU; the model keeps its own
                out_of_place.inplace = False
                setattr(extractor.get_submodule(parent), attribute, out_of_place)
        return extractor.eval()

    key = loaded.key
    return _extractors.get_or_compute(key, build)


def model_view(pixels: torch.Tensor, processor) -> Image.Image:
    """Undo the normalisation of a preprocessed (3, S, S) tensor: the photo as the model saw it."""
    mean = torch.tensor(processor.mean).view(3, 1, 1)
    std = torch.tensor(processor.std).view(3, 1, 1)
    rgb = (pixels * std + mean).clamp(0, 1).mul(255).round().byte()  # (3, S, S)
    return Image.fromarray(rgb.permute(1, 2, 0).numpy())


@gpu
def _capture(model: str, image: Image.Image, pretrained: bool):
    loaded = load_model(model, topic=TOPIC, pretrained=pretrained)
    pixels = model_input(loaded, image)  # (3, S, S)
    with torch.inference_mode():
        outputs = _extractor(loaded)(loaded.to_device(pixels[None]))  # name -> (1, C, H, W)
        maps = {name: out[0].to("cpu", torch.float16).numpy() for name, out in outputs.items()}
        means = {
            name: out[0].float().mean(dim=(1, 2)).cpu().numpy() for name, out in outputs.items()
        }
    return model_view(pixels, loaded.processor), maps, means


def capture_features(
    image: ImageSource, model: str = DEFAULT_MODEL, *, pretrained: bool = True
) -> FeatureCapture:
    """Run the model once on the photo and keep every layer's feature maps (cached per photo)."""
    name = get_spec(model, TOPIC).name
    image = rgb_image(image)
    key = cache_key(name, pretrained, image)

    def compute() -> FeatureCapture:
        view, maps, means = _capture(name, image, pretrained)
        return FeatureCapture(key, architecture(name), view, maps, means)

    return _captures.get_or_compute(key, compute)


def channel_order(capture: FeatureCapture, layer: str, order: str = "activation") -> np.ndarray:
    """The layer's channel numbers, most active first ("activation") or by number ("index")."""
    if order not in ORDERS:
        raise LabError(f"Order channels by one of: {', '.join(ORDERS)}.")
    means = capture.means[capture.architecture.layer(layer).name]
    if order == "index":
        return np.arange(len(means))
    return np.argsort(-means, kind="stable")


def view_features(
    capture: FeatureCapture, layer: str | None = None, order: str = "activation", channel=None
) -> FeatureView:
    """One layer of a capture; `channel` None means the first in the chosen order.

    Never runs the model: switching layer, order or channel only looks again (and re-renders).
    """
    info = capture.architecture.layer(layer) if layer else capture.architecture.layers[0]
    maps = capture.maps[info.name]  # (C, H, W)
    count = maps.shape[0]
    ranked = tuple(channel_order(capture, info.name, order).tolist())
    if channel is None:
        channel = ranked[0]
    message = f"{info.name} has channels 0 to {count - 1}; pick one of those."
    channel = whole_number(channel, "channel", 0, count - 1, message=message)
    position = ranked.index(channel)
    where = (
        f"Channel {channel} is number {position + 1} of {count} by mean activation"
        if order == "activation"
        else f"Channel {channel} of {count}"
    )
    peak = float(maps[channel].max())  # float16 → float is exact
    stats = f"mean {float(capture.means[info.name][channel]):.3g}, max {peak:.3g}"
    return FeatureView(
        key=capture.key,
        layer=info,
        channel=channel,
        order=ranked,
        maps=maps,
        view=capture.view,
        caption=f"{info.describe(capture.architecture.input_size)} {where} ({stats}). "
        "Each tile is scaled on its own.",
        ordering=order,
    )


def feature_maps(
    image: ImageSource,
    model: str = DEFAULT_MODEL,
    layer: str | None = None,
    order: str = "activation",
    channel: int | None = None,
    *,
    pretrained: bool = True,
) -> FeatureView:
    """The feature maps of one layer for a photo (the forward runs once per model and photo)."""
    if layer:
        architecture(model).layer(layer)  # a bad name is reported before any forward
    return view_features(
        capture_features(image, model, pretrained=pretrained), layer, order, channel
    )


# ---------------------------------------------------------------------------------------------
# Learned filters of the first layer


@dataclass(frozen=True)
class Filters:
    """The first convolution's kernels: what the network looks for in raw pixels
    (drawn by `cnn_render.filter_picture`)."""

    key: tuple  # (model, pretrained, runtime): drawings are cached under it
    layer: str  # readable name, conv1
    weights: np.ndarray  # (N, 3, k, k) float32, RGB order, as the model learned them

    def kernel(self, index) -> np.ndarray:
        """Kernel `index` as a (3, k, k) array (one k×k kernel per colour channel)."""
        count = len(self.weights)
        message = f"{self.layer} has filters 0 to {count - 1}; pick one of those."
        return self.weights[whole_number(index, "filter", 0, count - 1, message=message)]


def rounded(kernel: np.ndarray, digits: int = 3) -> np.ndarray:
    """`kernel` rounded to `digits` significant digits of its largest value (readable as text)."""
    largest = float(np.abs(kernel).max())
    decimals = digits - 1 - int(np.floor(np.log10(largest))) if largest > 0 else 0
    return np.round(kernel, max(0, decimals))


def learned_filters(model: str = DEFAULT_MODEL, *, pretrained: bool = True) -> Filters:
    """The first convolution's learned filters (AlexNet: 64 of 11×11×3)."""
    name = get_spec(model, TOPIC).name

    key = (name, pretrained, *runtime())

    def compute() -> Filters:
        loaded = load_model(name, topic=TOPIC, pretrained=pretrained)
        arch = architecture(name)
        conv = loaded.model.get_submodule(arch.first_conv)
        weights = conv.weight.detach().float().cpu().numpy()  # (N, 3, k, k)
        return Filters(key, arch.layer_at(arch.first_conv).name, weights)

    return _filters.get_or_compute(key, compute)


# ---------------------------------------------------------------------------------------------
# What a channel wants to see: feature visualisation and dataset examples (vlmlab.cnn.featurevis)

from vlmlab.cnn.featurevis import (  # noqa: E402, F401 - re-exported: the topic's front door
    Example,
    Visualization,
    dataset_examples,
    visualize,
    visualize_many,
    visualize_steps,
)
