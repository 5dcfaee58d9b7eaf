"""The robustness probe: one photo blurred, in grayscale, as an edge sketch, noisy, or filtered
with the student's own kernel, classified side by side by CLIP zero-shot over ImageNet's class
names and by an ImageNet CNN — the lecture's robustness table (CLIP paper, Figure 13) in small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFilter

from vlmlab.checks import finite_number, whole_number
from vlmlab.clip import DEFAULT_MODEL, zero_shot_imagenet
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, load_image, to_uint8

# name -> what a column is called
DISTORTIONS: dict[str, str] = {
    "original": "original",
    "blur": "blurred",
    "grayscale": "grayscale",
    "sketch": "edge sketch",
    "noise": "noisy",
    "kernel": "your kernel",
}
DEFAULT_DISTORTIONS = ("original", "blur", "grayscale", "sketch", "noise")
PROBE_CNN = "resnet50"  # the nearest in the registry to the paper's ImageNet ResNet-101
WORKING_SIDE = 448  # photos are probed at this size (twice what the models look at)
MAX_TOP_K = 10  # classes shown per picture


@dataclass(frozen=True, eq=False)
class Verdict:
    """One model's top classes for one picture, or why that model could not answer."""

    predictions: tuple[tuple[str, float], ...] = ()  # (class, probability), most likely first
    error: str | None = None

    @property
    def top(self) -> str | None:
        return self.predictions[0][0] if self.predictions else None


@dataclass(frozen=True, eq=False)
class ProbeColumn:
    distortion: str  # a key of DISTORTIONS
    title: str
    image: Image.Image  # what both models were shown
    clip: Verdict
    cnn: Verdict


@dataclass(frozen=True, eq=False)
class RobustnessProbe:
    """The probe's table: one column per distortion, the original first."""

    columns: tuple[ProbeColumn, ...]
    clip_model: str
    cnn_model: str

    def held(self, which: str) -> list[bool | None]:
        """Per column: does `which` ("clip" or "cnn") still give the original's top class?"""
        verdicts = [getattr(column, which) for column in self.columns]
        first = verdicts[0].top
        return [None if first is None or v.top is None else v.top == first for v in verdicts]


def probe(
    image: ImageSource,
    *,
    distortions: Sequence[str] = DEFAULT_DISTORTIONS,
    strength: float = 0.5,
    kernel_text: str | None = None,
    clip_model: str = DEFAULT_MODEL,
    cnn_model: str = PROBE_CNN,
    top_k: int = 3,
    pretrained: bool = True,
) -> RobustnessProbe:
    """Distort the photo each way and let CLIP (zero-shot, ImageNet names) and a CNN classify it.

    A model that is not on this machine gets its message in its cells; the other still answers.
    """
    unknown = [name for name in distortions if name not in DISTORTIONS]
    if unknown:
        raise LabError(
            f"Unknown distortion {str(unknown[0])[:40]!r}; choose from {', '.join(DISTORTIONS)}."
        )
    top_k = _check_top_k(top_k)
    photo = load_image(image)
    photo.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    names = ["original"] + [name for name in dict.fromkeys(distortions) if name != "original"]
    pictures = [distort(photo, name, strength=strength, kernel_text=kernel_text) for name in names]
    clip_verdicts = _clip_verdicts(pictures, clip_model, top_k, pretrained)
    cnn_verdicts = _cnn_verdicts(pictures, cnn_model, top_k)
    columns = tuple(
        ProbeColumn(name, DISTORTIONS[name], picture, clip_verdict, cnn_verdict)
        for name, picture, clip_verdict, cnn_verdict in zip(
            names, pictures, clip_verdicts, cnn_verdicts
        )
    )
    return RobustnessProbe(columns, clip_model, cnn_model)


def distort(
    image: ImageSource, distortion: str, *, strength: float = 0.5, kernel_text: str | None = None
) -> Image.Image:
    """The photo changed one way; `strength` (0–1) sets how much blur or noise."""
    photo = load_image(image)
    strength = _check_strength(strength)
    if distortion == "original":
        return photo
    if distortion == "blur":
        radius = min(photo.size) * (0.004 + 0.04 * strength)
        return photo.filter(ImageFilter.GaussianBlur(radius))
    if distortion == "grayscale":
        return photo.convert("L").convert("RGB")
    if distortion == "sketch":
        return _edge_sketch(photo)
    if distortion == "noise":
        sigma = 10.0 + 110.0 * strength  # on the 0–255 scale
        noise = np.random.default_rng(0).normal(0.0, sigma, (photo.height, photo.width, 3))
        noisy = np.asarray(photo, dtype=np.float32) + noise
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    if distortion == "kernel":
        return _filter_with_kernel(photo, kernel_text)
    raise LabError(f"Unknown distortion {distortion[:40]!r}; choose from {', '.join(DISTORTIONS)}.")


def _edge_sketch(photo: Image.Image) -> Image.Image:
    """Dark strokes on white paper where the photo has edges, like ImageNet-Sketch's drawings."""
    gray = cv2.GaussianBlur(np.asarray(photo.convert("L")), (0, 0), sigmaX=1.0)
    dx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    dy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    strength = np.hypot(dx, dy)  # (H, W) edge strength
    scale = float(np.percentile(strength, 98)) or 1.0
    paper = 255.0 - strength * (255.0 / scale)
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")


def _filter_with_kernel(photo: Image.Image, kernel_text: str | None) -> Image.Image:
    """The Convolution tab's kernel over the photo, its raw output brought to 0–255: divided by
    the kernel's sum (a blur keeps its brightness), or an edge response's strength, stretched."""
    from vlmlab.kernels import apply_kernel, parse_kernel

    if not kernel_text or not str(kernel_text).strip():
        raise LabError("Design a kernel in the Convolution tab first, then run the probe again.")
    kernel = parse_kernel(kernel_text)  # (k, k), or (3, k, k): one block per colour channel
    values = apply_kernel(photo, kernel)  # (H, W, 3) raw float32, as the Convolution tab
    # A kernel whose weights sum to s ≠ 0 (blur, sharpen) is divided by s, keeping the photo's
    # brightness; an edge detector (weights summing to ~0) is shown as the strength of its
    # response, stretched to 0–255.
    total = float(np.mean(kernel.sum(axis=(-2, -1))))
    pixels = to_uint8(values / total, "clip") if abs(total) >= 0.5 else to_uint8(values, "abs")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(pixels))


def _clip_verdicts(pictures, model: str, top_k: int, pretrained: bool) -> list[Verdict]:
    try:
        results = zero_shot_imagenet(pictures, model=model, pretrained=pretrained)
    except LabError as error:  # not on this machine, say: the CNN may still answer
        return [Verdict(error=str(error))] * len(pictures)
    return [Verdict(tuple(result.ranked(top_k))) for result in results]


def _cnn_verdicts(pictures, model: str, top_k: int) -> list[Verdict]:
    from vlmlab.cnn import classify_many  # one forward for all the pictures

    try:
        predictions = classify_many(pictures, model, top_k)
    except LabError as error:  # not on this machine, say: CLIP may still answer
        return [Verdict(error=str(error))] * len(pictures)
    return [Verdict(tuple(prediction)) for prediction in predictions]


def _check_strength(strength: float) -> float:
    message = "The strength must be a number between 0 and 1."
    return finite_number(strength, "strength", 0.0, 1.0, text=True, message=message)


def _check_top_k(top_k: int) -> int:
    return whole_number(top_k, "number of classes to show", 1, MAX_TOP_K, text=True)
