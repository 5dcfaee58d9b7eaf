"""The revolution of depth (the lecture's slide: AlexNet 8 layers in 2012, VGG 19 in 2014, ResNet
152 in 2015): year, depth, parameters, GFLOPs and ImageNet top-1 of every CNN the lab offers,
and the same photo's top-5 from each, side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmlab.cnn import TOPIC, Prediction, architecture, check_top_k, classify, rgb_image
from vlmlab.errors import ModelUnavailableError
from vlmlab.images import ImageSource
from vlmlab.models import choices, get_spec, torchvision_weights

# The papers, for the depth table (their years are not in the weights' metadata).
PAPERS = {
    "alexnet": ("Krizhevsky, Sutskever & Hinton", 2012),
    "vgg16": ("Simonyan & Zisserman", 2014),
    "vgg19": ("Simonyan & Zisserman", 2014),
    "resnet50": ("He, Zhang, Ren & Sun", 2015),
    "resnet152": ("He, Zhang, Ren & Sun", 2015),
    "mobilenet_v2": ("Sandler, Howard, Zhu, Zhmoginov & Chen", 2018),
}


@dataclass(frozen=True)
class DepthRow:
    """One network in the depth table; numbers from its weights' metadata and its structure."""

    model: str
    title: str
    paper: str
    year: int | None
    depth: int  # weight layers (conv + fully connected) on the longest path
    parameters: int
    gflops: float  # per 224×224 image
    top1: float  # ImageNet-1K top-1 accuracy, %


@dataclass(frozen=True)
class Comparison:
    """The depth table plus the same photo's predictions from every network."""

    rows: tuple[DepthRow, ...]
    predictions: dict[str, Prediction]  # model -> top-k, for the models available here
    notes: dict[str, str]  # model -> why it has no predictions (e.g. weights not on this machine)


def depth_row(model: str) -> DepthRow:
    """One network's row, from its weights' metadata and its own structure (any CNN by name)."""
    name = get_spec(model, TOPIC).name
    meta = torchvision_weights(name).meta
    paper, year = PAPERS.get(name, ("", None))
    return DepthRow(
        model=name,
        title=get_spec(name).title,
        paper=paper,
        year=year,
        depth=architecture(name).depth,
        parameters=int(meta["num_params"]),
        gflops=float(meta["_ops"]),
        top1=float(meta["_metrics"]["ImageNet-1K"]["acc@1"]),
    )


def depth_table(extra: tuple[str, ...] = ()) -> tuple[DepthRow, ...]:
    """Year, depth, parameters, GFLOPs and ImageNet top-1 for every CNN the lab offers, and for
    the networks named in `extra` (models by name)."""
    names = dict.fromkeys([*choices(TOPIC), *(get_spec(m, TOPIC).name for m in extra)])
    rows = [depth_row(name) for name in names]
    return tuple(sorted(rows, key=lambda row: (row.year or 0, row.depth)))


def compare_models(
    image: ImageSource, top_k: int = 5, *, pretrained: bool = True, extra: tuple[str, ...] = ()
) -> Comparison:
    """The depth table and each network's top_k for the same photo, side by side.

    A network whose weights cannot be had here gets a note instead of failing the table.
    """
    top_k = check_top_k(top_k)
    image = rgb_image(image)
    rows = depth_table(tuple(extra))
    predictions, notes = {}, {}
    for row in rows:
        try:
            predictions[row.model] = classify(image, row.model, top_k, pretrained=pretrained)
        except ModelUnavailableError as error:
            notes[row.model] = str(error)
    return Comparison(rows, predictions, notes)
