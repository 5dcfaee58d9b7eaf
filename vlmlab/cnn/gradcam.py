"""Class evidence with Grad-CAM (Selvaraju et al. 2017), through Captum's `LayerGradCam`: the last
convolutional feature maps, weighted by how much the class score rises with each, then a ReLU.
A heat map is evidence, not an explanation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerGradCam
from PIL import Image

from vlmlab.cache import LRUCache
from vlmlab.checks import whole_number
from vlmlab.cnn import (
    DEFAULT_MODEL,
    TOPIC,
    architecture,
    cache_key,
    categories,
    model_input,
    model_view,
    probabilities,
    rgb_image,
)
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.images import ImageSource
from vlmlab.models import get_spec, load_model

NOTE = (
    "A heat map is evidence, not an explanation: it marks where the last feature maps most "
    "raise this class's score. It does not say why the network decided, and it can look "
    "convincing even when the network is right for the wrong reason."
)

_evidence = LRUCache(32)  # (model, pretrained, image, class) -> Evidence


@dataclass(frozen=True)
class Evidence:
    """Where the network found evidence for one class in one photo."""

    label: str
    class_index: int
    probability: float  # the network's probability for this class
    layer: str  # readable name of the feature maps the gradients were taken at
    heat: np.ndarray  # (h, w) in [0, 1] at that layer's resolution, 0 = no evidence
    view: Image.Image  # what the model saw (resized, centre-cropped); `cnn_render.draw_evidence`
    note: str = NOTE


def class_index(target: int | str | None, names: Sequence[str], probs: np.ndarray) -> int:
    """Resolve a class given by number or name, "281" or "tabby" (None: the top class)."""
    if target is None or (isinstance(target, str) and not target.strip()):
        return int(np.argmax(probs))
    if isinstance(target, str) and target.strip().lstrip("+-").isdigit():
        target = int(target.strip())  # a number typed or sent as text
    if isinstance(target, str):
        wanted = target.strip().lower()
        matches = [i for i, name in enumerate(names) if name.lower() == wanted]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LabError(
                f"{target!r} names {len(matches)} classes ({', '.join(map(str, matches))}); "
                "give the class number instead."
            )
        raise LabError(f"No class is called {target[:60]!r}; pick one from the list of classes.")
    message = f"The class number must be from 0 to {len(names) - 1}."
    return whole_number(target, "class number", 0, len(names) - 1, message=message)


@gpu
def _grad_cam(model: str, image: Image.Image, index: int, pretrained: bool):
    """Captum's Grad-CAM at the last convolutional feature maps: (h, w) heat, ReLU'd."""
    loaded = load_model(model, topic=TOPIC, pretrained=pretrained)
    layer = loaded.model.get_submodule(architecture(model).evidence_layer)
    pixels = model_input(loaded, image)  # (3, S, S)
    with torch.enable_grad():  # gradients of the class score; Captum removes its hooks itself
        heat = LayerGradCam(loaded.model, layer).attribute(
            loaded.to_device(pixels[None]), target=index, relu_attributions=True
        )  # (1, 1, h, w)
    heat = heat[0, 0].detach().float().cpu().numpy()
    peak = float(heat.max())
    return (heat / peak if peak > 0 else heat), model_view(pixels, loaded.processor)


def grad_cam(
    image: ImageSource,
    model: str = DEFAULT_MODEL,
    target: int | str | None = None,
    *,
    pretrained: bool = True,
) -> Evidence:
    """Grad-CAM for the top class (target None) or any class, by number or name."""
    name = get_spec(model, TOPIC).name
    image = rgb_image(image)
    names = categories(name)
    if target is not None:  # a bad number or name fails before any forward
        class_index(target, names, np.ones(len(names)))
    probs = probabilities([image], name, pretrained=pretrained)[0]
    index = class_index(target, names, probs)

    def compute() -> Evidence:
        heat, view = _grad_cam(name, image, index, pretrained)
        arch = architecture(name)
        return Evidence(
            label=names[index],
            class_index=index,
            probability=float(probs[index]),
            layer=arch.layer_at(arch.evidence_layer).name,
            heat=heat,
            view=view,
        )

    return _evidence.get_or_compute(cache_key(name, pretrained, image) + (index,), compute)
