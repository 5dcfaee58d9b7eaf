"""What does this channel want to see? Feature visualisation (Erhan et al. 2009; Olah, Mordvintsev
& Schubert, "Feature Visualization", Distill 2017): optimise an input image until one channel of a
CNN fires as hard as it can, beside the crops of real photos where it fires hardest (Zeiler &
Fergus 2014's dataset examples).

The recipe is Lucid's (github.com/tensorflow/lucid) and its PyTorch port Lucent's
(github.com/greentfrapp/lucent), which turns the optimisation's high-frequency noise into
recognisable pictures:

- the image is parameterised in Fourier space, each frequency scaled by 1/f so that coarse
  structure is as easy to change as fine detail (Distill 2017, "Preconditioning"; Lucid's
  `fft_image`), and its colours in a decorrelated space (Lucid's `color_correlation_svd_sqrt`),
  squashed into [0, 1] by a sigmoid;
- transformation robustness: every step sees the image padded, jittered, slightly scaled and
  rotated (Lucid's `standard_transforms`), so the channel must fire wherever the pattern lands;
- Adam, learning rate 0.05, on the channel's mean activation (its negative for "what does it
  hate?").

Layers and channels are named as in the feature-map view (`vlmlab.cnn.layer_names`). The network
runs only up to the chosen layer, through a graph module that shares the lab's cached model's
weights (the same storage, seen as tensors that want no gradient, so autograd tracks the image
alone): no hooks are registered, and gradients are taken with respect to the image alone, so
nothing is left on the shared model (its parameters' `.grad` stay None).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import fx

from vlmlab import checks
from vlmlab.cache import DiskCache, LRUCache
from vlmlab.cnn.layers import DEFAULT_MODEL, TOPIC, architecture, capture_graph
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.models import LoadedModel, get_spec, load_model, on_evict, torchvision_weights

Progress = Callable[..., object]  # progress(fraction, desc=...), like gr.Progress

MIN_STEPS, MAX_STEPS = 1, 4096
MIN_SIZE, MAX_SIZE = 64, 512
DIRECTIONS = ("want", "hate")  # maximise the channel, or minimise it
LEARNING_RATE = 0.05  # Lucid's and Lucent's Adam
VERSION = 1  # of the recipe: part of the disk-cache key, bumped when results would change

# Lucid's colour correlation (the square root of ImageNet's colour covariance, from its SVD),
# normalised so that its largest column has norm 1.
_COLOUR_CORRELATION = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
_COLOUR_CORRELATION /= np.max(np.linalg.norm(_COLOUR_CORRELATION, axis=0))
_PAD, _JITTER, _FINE_JITTER = 12, 8, 4  # pixels (Lucid's standard_transforms)
_SCALES = [1 + (i - 5) / 50 for i in range(11)]  # 0.9 … 1.1
_ANGLES = list(range(-10, 11)) + 5 * [0]  # degrees, no rotation a little more often

_graphs = LRUCache(16)  # (LoadedModel.key, layer) -> graph module up to that layer
on_evict(lambda loaded: _graphs.forget(lambda key: key[0] == loaded.key))  # they share its weights
_cache: DiskCache | None = None  # finished visualisations on disk (VLMLAB_CACHE)


@dataclass(frozen=True)
class Visualization:
    """The image a channel wants (or hates), as far as the optimisation has got."""

    model: str
    layer: str  # readable name, as in the feature-map view
    channel: int
    direction: str  # "want" (maximised) or "hate" (minimised)
    image: Image.Image  # size×size RGB
    step: int  # optimisation steps taken
    steps: int  # steps asked for
    activation: float  # the channel's mean activation on `image` (transformed, during the run)
    seconds: float  # time spent optimising (0 when it came from the cache)
    done: bool = False  # the last frame of a run
    complete: bool = False  # every step ran (False: stopped by the time limit, or not done yet)
    cached: bool = False  # read from the disk cache, not computed now

    def describe(self) -> str:
        verb = "wants" if self.direction == "want" else "hates"
        where = f"{self.layer} channel {self.channel}"
        if not self.done:
            return f"What {where} {verb}: step {self.step} of {self.steps}…"
        if self.cached:
            how = f"{self.steps} steps, from the cache"
        elif self.complete:
            how = f"{self.steps} steps in {self.seconds:.1f} s"
        else:
            how = f"stopped after {self.step} of {self.steps} steps: the {self.seconds:.0f} s limit"
        return f"What {where} {verb} ({how}); its mean activation: {self.activation:.3g}."


# ---------------------------------------------------------------------------------------------
# Checks


def whole_number(value, name: str, low: int, high: int) -> int:
    """`value` as an int from `low` to `high`, or a `LabError` naming `name` and the range."""
    message = f"{name} must be a whole number from {low} to {high}; got {str(value)[:20]}."
    return checks.whole_number(value, name, low, high, message=message)


def check_channel(model: str, layer: str, channel) -> tuple[str, int]:
    """(the layer's readable name, the channel as an int), or a `LabError` that says what is
    there. Read from the network's structure: nothing is loaded."""
    info = architecture(model).layer(layer)
    count = info.shape[0]
    message = f"{info.name} has channels 0 to {count - 1}; pick one of those."
    return info.name, checks.whole_number(channel, "channel", 0, count - 1, message=message)


def check_settings(steps, size, seed, direction: str) -> tuple[int, int, int, str]:
    steps = whole_number(steps, "steps", MIN_STEPS, MAX_STEPS)
    size = whole_number(size, "size", MIN_SIZE, MAX_SIZE)
    seed = whole_number(seed, "seed", 0, 2**31 - 1)
    if direction not in DIRECTIONS:
        raise LabError("The direction must be 'want' (what the channel wants) or 'hate'.")
    return steps, size, seed, direction


# ---------------------------------------------------------------------------------------------
# The network up to one layer, sharing the cached model's weights


def layer_module(loaded: LoadedModel, layer: str) -> torch.nn.Module:
    """A graph module computing only up to `layer` and returning its output (B, C, H, W).

    It re-roots the feature-map view's graph on the loaded model (shared weights, no hooks) and
    drops everything after the layer; in-place activations are swapped for out-of-place copies
    inside it only, as in `cnn._extractor`.
    """

    def build():
        graph = capture_graph(loaded.spec.name)
        output = next(node for node in graph.nodes if node.op == "output")
        target = output.args[0][layer]
        graph.erase_node(output)
        graph.output(target)
        module = fx.GraphModule(loaded.model, graph)
        module.graph.eliminate_dead_code()
        module.recompile()
        module.delete_all_unused_submodules()
        for path, child in list(module.named_modules()):
            own = child._parameters
            if not path or not (getattr(child, "inplace", False) or own):
                continue
            parent, _, attribute = path.rpartition(".")
            twin = copy.copy(child)  # this module's own view of the shared layer
            twin._modules, twin._buffers = dict(child._modules), dict(child._buffers)
            if getattr(child, "inplace", False):
                twin.inplace = False
            # The same weights (the same storage) that want no gradient: the optimisation
            # differentiates with respect to the image only, so autograd need not track them.
            twin._parameters = {
                name: None if p is None else torch.nn.Parameter(p.detach(), requires_grad=False)
                for name, p in own.items()
            }
            setattr(module.get_submodule(parent), attribute, twin)
        return module.eval()

    return _graphs.get_or_compute((loaded.key, layer), build)


# ---------------------------------------------------------------------------------------------
# The image: Fourier-space parameters, decorrelated colour (Lucid's fft_image, to_valid_rgb)


def _frequency_scale(size: int, device: torch.device) -> torch.Tensor:
    """1/f for every frequency of an rfft2 of a size×size image: (size, size // 2 + 1)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return (1.0 / torch.clamp(freqs, min=1.0 / size)).to(device)


def _initial_spectrum(count: int, size: int, seeds: Sequence[int]) -> torch.Tensor:
    """(count, 3, size, size // 2 + 1, 2) small random spectra, one seed each (Lucid: sd 0.01)."""
    shape = (3, size, size // 2 + 1, 2)
    spectra = []
    for seed in seeds[:count]:
        generator = torch.Generator().manual_seed(seed)
        spectra.append(torch.randn(shape, generator=generator) * 0.01)
    return torch.stack(spectra)


def _to_image(spectrum: torch.Tensor, scale: torch.Tensor, size: int) -> torch.Tensor:
    """Spectrum → (B, 3, size, size) RGB in [0, 1]."""
    complex_spectrum = torch.view_as_complex(spectrum * scale[..., None])
    image = torch.fft.irfftn(complex_spectrum, s=(size, size), norm="ortho") / 4.0  # Lucid's 4
    colours = torch.from_numpy(_COLOUR_CORRELATION.T).to(image.device)
    image = torch.einsum("bchw,cd->bdhw", image, colours)
    return torch.sigmoid(image)


def _pixels(image: torch.Tensor) -> list[Image.Image]:
    rgb = image.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(array) for array in rgb]


# ---------------------------------------------------------------------------------------------
# Transformation robustness (Lucid's standard_transforms: pad, jitter, scale, rotate, jitter)


def _transform(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One random view of the batch (the same for every image in it): padded by _PAD grey
    pixels, cropped by a jitter of up to _JITTER, scaled and rotated about the centre, cropped
    by a jitter of up to _FINE_JITTER. All four are one sampling grid, so each step resamples
    the image once (a grey pad is the image less 0.5, padded with zeros, plus 0.5)."""
    side = image.shape[-1]
    padded = side + 2 * _PAD
    shift = [int(v) for v in rng.integers(0, _JITTER, 2)]  # (x, y) of the first crop
    cropped = padded - _JITTER
    scale, angle = float(rng.choice(_SCALES)), math.radians(float(rng.choice(_ANGLES)))
    out = max(1, round(cropped * scale))
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], device=image.device)
    grid = F.affine_grid(theta[None], [1, 3, out, out], align_corners=False)  # (1, out, out, 2)
    fine = [int(v) for v in rng.integers(0, _FINE_JITTER, 2)]
    view = out - _FINE_JITTER
    grid = grid[:, fine[1] : fine[1] + view, fine[0] : fine[0] + view]
    # From the cropped frame's coordinates (align_corners=False) to the image's.
    offset = torch.tensor([cropped + 2 * (shift[0] - _PAD), cropped + 2 * (shift[1] - _PAD)])
    grid = (grid * cropped + offset.to(grid)) / side - 1
    grey = F.grid_sample(
        image - 0.5, grid.expand(len(image), -1, -1, -1), mode="bilinear",
        padding_mode="zeros", align_corners=False,
    )  # fmt: skip
    return grey + 0.5


# ---------------------------------------------------------------------------------------------
# The optimisation


@dataclass(frozen=True)
class _Frame:
    step: int
    images: list[Image.Image]
    activations: list[float]  # each channel's mean activation on its own (transformed) image
    seconds: float
    complete: bool
    done: bool


@gpu
def _optimise(
    model: str,
    layer: str,
    channels: Sequence[int],
    *,
    steps: int,
    size: int,
    seed: int,
    direction: str,
    pretrained: bool,
    every: int,
    time_limit: float | None,
) -> Iterator[_Frame]:
    """Optimise one image per channel, all in one batch; a frame every `every` steps and at
    the end. The transforms come from `seed` alone, and each image starts from its own
    (seed, channel) noise, so a channel gets the same picture whatever batch it runs in (up to
    float rounding, which Adam's first, normalised steps can carry a little)."""
    loaded = load_model(model, topic=TOPIC, pretrained=pretrained)
    net = layer_module(loaded, layer)
    device = loaded.device
    mean = torch.tensor(loaded.processor.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.processor.std, device=device).view(1, 3, 1, 1)
    index = torch.tensor(list(channels), device=device)
    sign = 1.0 if direction == "want" else -1.0
    scale = _frequency_scale(size, device)
    spectrum = _initial_spectrum(len(channels), size, [seed * 100_003 + c for c in channels])
    spectrum = spectrum.to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([spectrum], lr=LEARNING_RATE)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    rows = torch.arange(len(channels), device=device)
    step = 0
    while step < steps:
        with (
            torch.enable_grad()
        ):  # per step: a generator must not leave grad mode set between yields
            image = _to_image(spectrum, scale, size)  # (B, 3, size, size) in [0, 1]
            seen = (_transform(image, rng) - mean) / std
            maps = net(seen.to(loaded.dtype))  # (B, C, H, W)
            chosen = maps[rows, index].float().mean(dim=(1, 2))  # (B,) mean activation
            optimiser.zero_grad(set_to_none=True)
            (-sign * chosen.sum()).backward(inputs=[spectrum])  # the model's .grad stay None
            optimiser.step()
        step += 1
        seconds = time.perf_counter() - started
        out_of_time = time_limit is not None and seconds > time_limit
        last = step == steps or out_of_time
        if last or step % every == 0:
            with torch.no_grad():
                pictures = _pixels(_to_image(spectrum, scale, size))
            activations = chosen.detach().float().cpu().tolist()
            yield _Frame(step, pictures, activations, seconds, step == steps, last)
        if out_of_time:
            return


# ---------------------------------------------------------------------------------------------
# Public calls


def disk_cache() -> DiskCache:
    """The bounded on-disk cache of finished visualisations (VLMLAB_CACHE; see `DiskCache`)."""
    global _cache
    if _cache is None:
        _cache = DiskCache("featurevis")
    return _cache


def cache_key(model, layer, channel, direction, steps, size, seed) -> str | None:
    """The disk-cache key of a visualisation with real weights: which weights, layer, channel,
    direction and settings, and the recipe's version. (Random weights are never cached.)"""
    weights = torchvision_weights(model).url.rsplit("/", 1)[-1]
    text = repr((VERSION, model, weights, layer, channel, direction, steps, size, seed))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _from_cache(key: str | None, **fields) -> Visualization | None:
    found = disk_cache().get(key) if key else None
    if found is None:
        return None
    image, meta = found
    return Visualization(
        image=image,
        step=fields["steps"],
        activation=float(meta.get("activation", "nan")),
        seconds=0.0,
        done=True,
        complete=True,
        cached=True,
        **fields,
    )


def visualize_steps(
    model: str = DEFAULT_MODEL,
    layer: str | None = None,
    channel: int = 0,
    *,
    steps: int = 256,
    size: int = 224,
    seed: int = 0,
    direction: str = "want",
    every: int | None = None,
    time_limit: float | None = None,
    pretrained: bool = True,
    progress: Progress | None = None,
) -> Iterator[Visualization]:
    """The image forming, frame by frame (every `every` steps; by default 16 frames), ending
    with a frame whose `done` is True. A finished run with real weights is kept in the disk
    cache, and a request already there yields that one frame at once. `time_limit` (seconds)
    stops a run early; its last frame then has `complete` False and is not cached.

    Closing the generator (a page that goes away) stops the optimisation at the next frame.
    """
    name = get_spec(model, TOPIC).name
    layer, channel = check_channel(name, layer or architecture(name).names[0], channel)
    steps, size, seed, direction = check_settings(steps, size, seed, direction)
    every = whole_number(every, "every", 1, MAX_STEPS) if every is not None else max(1, steps // 16)
    fields = {
        "model": name,
        "layer": layer,
        "channel": channel,
        "direction": direction,
        "steps": steps,
    }
    key = cache_key(name, layer, channel, direction, steps, size, seed) if pretrained else None
    cached = _from_cache(key, **fields)
    if cached is not None:
        if progress is not None:
            progress(1.0, desc="From the cache")
        yield cached
        return
    frames = _optimise(
        name, layer, [channel], steps=steps, size=size, seed=seed, direction=direction,
        pretrained=pretrained, every=every, time_limit=time_limit,
    )  # fmt: skip
    for frame in frames:
        if progress is not None:
            progress(frame.step / steps, desc=f"Step {frame.step} of {steps}")
        found = Visualization(
            image=frame.images[0],
            step=frame.step,
            activation=frame.activations[0],
            seconds=frame.seconds,
            done=frame.done,
            complete=frame.complete,
            **fields,
        )
        if frame.complete and key:
            disk_cache().put(key, found.image, {"activation": repr(found.activation)})
        yield found


def visualize(
    model: str = DEFAULT_MODEL,
    layer: str | None = None,
    channel: int = 0,
    *,
    steps: int = 256,
    size: int = 224,
    seed: int = 0,
    direction: str = "want",
    time_limit: float | None = None,
    pretrained: bool = True,
    progress: Progress | None = None,
) -> Visualization:
    """The image that makes `channel` of `layer` fire hardest ("want") or least ("hate"):
    `steps` Adam steps on a size×size image. See the module's docstring for the recipe."""
    last = None
    for last in visualize_steps(
        model, layer, channel, steps=steps, size=size, seed=seed, direction=direction,
        every=MAX_STEPS, time_limit=time_limit, pretrained=pretrained, progress=progress,
    ):  # fmt: skip
        pass
    return last  # type: ignore[return-value]


def visualize_many(
    model: str,
    layer: str,
    channels: Sequence[int],
    *,
    steps: int = 256,
    size: int = 224,
    seed: int = 0,
    direction: str = "want",
    batch: int = 8,
    pretrained: bool = True,
    progress: Progress | None = None,
) -> list[Visualization]:
    """Many channels of one layer (the atlas): those in the disk cache at once, the others
    optimised `batch` at a time (each gets what `visualize` would give it, and is cached)."""
    name = get_spec(model, TOPIC).name
    checked = [check_channel(name, layer, c) for c in channels]
    layer = checked[0][0] if checked else architecture(name).layer(layer).name
    steps, size, seed, direction = check_settings(steps, size, seed, direction)
    batch = whole_number(batch, "batch", 1, 256)
    found: dict[int, Visualization] = {}
    todo = []
    for _, channel in checked:
        key = cache_key(name, layer, channel, direction, steps, size, seed) if pretrained else None
        fields = {
            "model": name,
            "layer": layer,
            "channel": channel,
            "direction": direction,
            "steps": steps,
        }
        cached = _from_cache(key, **fields)
        if cached is None:
            todo.append((channel, key, fields))
        else:
            found[channel] = cached
    done = len(found)
    total = len(checked)
    if progress is not None:
        progress(done / max(1, total), desc=f"{done} of {total} channels")
    for start in range(0, len(todo), batch):
        group = todo[start : start + batch]
        frames = _optimise(
            name, layer, [c for c, _, _ in group], steps=steps, size=size, seed=seed,
            direction=direction, pretrained=pretrained, every=max(1, steps // 16), time_limit=None,
        )  # fmt: skip
        for last in frames:
            if progress is not None:
                share = (done + len(group) * last.step / steps) / max(1, total)
                progress(share, desc=f"{done} of {total} channels (step {last.step} of {steps})")
        for (channel, key, fields), image, activation in zip(group, last.images, last.activations):
            result = Visualization(
                image=image, step=steps, activation=activation, seconds=last.seconds,
                done=True, complete=True, **fields,
            )  # fmt: skip
            if key:
                disk_cache().put(key, image, {"activation": repr(activation)})
            found[channel] = result
        done += len(group)
        if progress is not None:
            progress(done / max(1, total), desc=f"{done} of {total} channels")
    return [found[channel] for _, channel in checked]


def power_spectrum_slope(image: Image.Image) -> float:
    """How fast an image's power falls with spatial frequency: the least-squares slope of
    log power against log frequency, radially averaged over 2 … N/2 cycles per image, of the
    gray image (mean removed, Hann-windowed). White noise gives about 0, the lab's sample
    photos −2.7 to −3.1 at 224×224; below −1 an image's power falls at least tenfold per
    decade of frequency: structure, not pixel noise."""
    gray = np.asarray(image.convert("L"), np.float64)
    side = min(gray.shape)
    gray = gray[:side, :side] - gray[:side, :side].mean()
    window = np.hanning(side)
    power = np.abs(np.fft.fft2(gray * window[:, None] * window[None, :])) ** 2
    fy = np.fft.fftfreq(side)[:, None] * side
    fx = np.fft.fftfreq(side)[None, :] * side
    radius = np.sqrt(fx**2 + fy**2).round().astype(int).ravel()
    radial = np.bincount(radius, power.ravel()) / np.maximum(np.bincount(radius), 1)
    cycles = np.arange(2, side // 2)
    return float(np.polyfit(np.log(cycles), np.log(radial[cycles] + 1e-12), 1)[0])


def channel_activation(
    image: Image.Image, model: str, layer: str, channel: int, *, pretrained: bool = True
) -> float:
    """The channel's mean activation on `image` exactly as it is (no resizing or cropping
    beyond the model's normalisation): how hard a visualisation makes the channel fire."""
    name = get_spec(model, TOPIC).name
    layer, channel = check_channel(name, layer, channel)
    loaded = load_model(name, topic=TOPIC, pretrained=pretrained)
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(loaded.processor.mean).view(3, 1, 1)
    std = torch.tensor(loaded.processor.std).view(3, 1, 1)
    with torch.inference_mode():
        maps = layer_module(loaded, layer)(loaded.to_device(((pixels - mean) / std)[None]))
    return float(maps[0, channel].float().mean())


# ---------------------------------------------------------------------------------------------
# Dataset examples: where real photos make the channel fire hardest (Zeiler & Fergus 2014)

SMALLEST_CROP = 16  # pixels of the model's view: a conv1 receptive field (11) is too small to see
_peaks = LRUCache(64)  # capture key -> _Peaks (every layer's per-channel extremes, and the view)


@dataclass(frozen=True)
class Example:
    """A patch of a photo where the channel fires hardest (or, for "hate", least)."""

    source: str  # "your photo", or the sample photo's name
    value: float  # the channel's highest (lowest for "hate") value anywhere in the photo
    crop: Image.Image  # that place in the model's view, as wide as the layer's receptive field
    box: tuple[int, int, int, int]  # (left, top, right, bottom) of the crop in the view


@dataclass(frozen=True)
class _Peaks:
    view: Image.Image
    layers: dict[str, tuple[np.ndarray, ...]]  # name -> (max, argmax, min, argmin), each (C,)
    shapes: dict[str, tuple[int, int]]  # name -> (H, W)


def _photo_peaks(capture) -> _Peaks:
    """Every layer's per-channel extremes from a capture (the feature-map view's forward)."""

    def compute() -> _Peaks:
        layers, shapes = {}, {}
        for name, maps in capture.maps.items():  # (C, H, W) float16
            flat = torch.from_numpy(maps).float().flatten(1)  # (C, H·W)
            top, top_at = flat.max(dim=1)
            low, low_at = flat.min(dim=1)
            layers[name] = tuple(t.numpy() for t in (top, top_at, low, low_at))
            shapes[name] = maps.shape[1:]
        return _Peaks(capture.view, layers, shapes)

    return _peaks.get_or_compute(capture.key, compute)


def dataset_examples(
    model: str = DEFAULT_MODEL,
    layer: str | None = None,
    channel: int = 0,
    photo=None,
    *,
    direction: str = "want",
    pretrained: bool = True,
) -> tuple[Example, ...]:
    """The patch of each sample photo (and of `photo`, first, when given) where the channel
    fires hardest, strongest first: the Distill article's "dataset examples". Read from the
    feature maps the feature-map view captures (one forward per photo, cached)."""
    from vlmlab import cnn  # here: vlmlab.cnn re-exports this module
    from vlmlab.images import sample_images

    name = get_spec(model, TOPIC).name
    layer, channel = check_channel(name, layer or architecture(name).names[0], channel)
    if direction not in DIRECTIONS:
        raise LabError("The direction must be 'want' (what the channel wants) or 'hate'.")
    info = architecture(name).layer(layer)
    photos = [("your photo", photo)] if photo is not None else []
    photos += list(sample_images().items())
    found = []
    for source, image in photos:
        peaks = _photo_peaks(cnn.capture_features(image, name, pretrained=pretrained))
        top, top_at, low, low_at = peaks.layers[layer]
        value, at = (top, top_at) if direction == "want" else (low, low_at)
        height, width = peaks.shapes[layer]
        row, column = divmod(int(at[channel]), width)
        box = _receptive_box(peaks.view.size, (height, width), (row, column), info.receptive_field)
        found.append(Example(source, float(value[channel]), peaks.view.crop(box), box))
    found.sort(key=lambda e: e.value, reverse=direction == "want")
    return tuple(found)


def _receptive_box(view: tuple[int, int], grid: tuple[int, int], at: tuple[int, int], field: int):
    """The square of the view that output (row, column) of an H×W map looks at: centred on it,
    as wide as the receptive field (at least SMALLEST_CROP, at most half the view)."""
    width, height = view
    side = int(min(max(field, SMALLEST_CROP), min(width, height) // 2))
    centre_x = (at[1] + 0.5) * width / grid[1]
    centre_y = (at[0] + 0.5) * height / grid[0]
    left = round(min(max(centre_x - side / 2, 0), width - side))
    top = round(min(max(centre_y - side / 2, 0), height - side))
    return left, top, left + side, top + side
