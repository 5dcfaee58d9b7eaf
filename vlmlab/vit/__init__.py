"""Inside a Vision Transformer: "An Image is Worth 16x16 Words" (Dosovitskiy et al., ICLR 2021).

One forward captures what every view needs: the patches, their linear projection, the learned
position embeddings and every layer's attention; rollout follows Abnar & Zuidema (ACL 2020).
Layers, heads and patches are numbered from 1, as on the slides; position 0 is the CLS token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from PIL import Image

from vlmlab import checks
from vlmlab.cache import LRUCache, photo_fingerprint
from vlmlab.device import gpu
from vlmlab.errors import LabError
from vlmlab.images import ImageSource, rgb_image
from vlmlab.models import LoadedModel, default_model, get_spec, load_model, runtime

CLS = "CLS"  # the query that stands for the class token
MEAN = "mean"  # the head choice that averages over heads
TOP_K = 5
HALF_PRECISION_ABOVE = 64 * 2**20  # attentions bigger than this (fp32 bytes) are kept in fp16

_inspections = LRUCache(maxsize=8)


@dataclass(frozen=True, eq=False)
class ViTInspection:
    """Everything one forward of a ViT shows about one photo (numpy on the CPU)."""

    model_name: str
    model_title: str
    image: Image.Image  # the photo as the model sees it: resized, cropped, de-normalised
    patch_size: int  # p: each patch is C×p×p pixels
    grid: tuple[int, int]  # (rows, columns) of patches
    num_special: int  # tokens before the patches: CLS, registers (= tokens − grid cells)
    attentions: np.ndarray  # (layers, heads, tokens, tokens); every row sums to 1
    patch_pixels: np.ndarray  # (patches, C, p, p): the normalised numbers the model reads
    patch_embeddings: np.ndarray  # (patches, D): the patch-embedding layer's output
    position_embeddings: np.ndarray  # (positions, D): learned, special positions first; (0, D)
    # for a model with relative position biases instead (BEiT), and `position_note` says so
    predictions: tuple[tuple[str, float], ...] = ()  # top-5 (label, probability), if a head
    notes: tuple[str, ...] = ()  # what a user should know about this model
    special_tokens: tuple[str, ...] = ()  # names of the num_special tokens: CLS, registers…
    position_note: str = ""  # why there is no position table to show (relative biases), if not

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.attentions.shape[-1]

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.patch_embeddings.shape[1]

    @property
    def channels(self) -> int:
        return self.patch_pixels.shape[1]

    @property
    def has_cls(self) -> bool:
        return self.num_special > 0

    @cached_property
    def rollout(self) -> np.ndarray:
        """Attention rollout after each layer, (layers, tokens, tokens); computed on first use."""
        return attention_rollout(self.attentions)


# ---------------------------------------------------------------------------------------------
# The forward


def inspect_vit(
    image: ImageSource, model: str | None = None, *, pretrained: bool = True
) -> ViTInspection:
    """Run `model` once on `image` and keep all it shows; cached per (model, image)."""
    name = get_spec(model or default_model("vit"), "vit").name
    photo = rgb_image(image)
    key = (name, pretrained, *runtime(), photo_fingerprint(photo))
    return _inspections.get_or_compute(key, lambda: _inspect_on_device(photo, name, pretrained))


def load_vit(model: str | None = None, *, pretrained: bool = True, progress=None) -> LoadedModel:
    """The model as this module needs it: eager attention, so the attention maps come back."""
    name = model or default_model("vit")
    return load_model(
        name, topic="vit", attn_implementation="eager", pretrained=pretrained, progress=progress
    )


@gpu
def _inspect_on_device(image: Image.Image, name: str, pretrained: bool) -> ViTInspection:
    return inspect_loaded(load_vit(name, pretrained=pretrained), image)


def inspect_loaded(loaded: LoadedModel, image: Image.Image) -> ViTInspection:
    """`inspect_vit` without the cache, on a loaded model: preprocess → forward → numpy."""
    processor = getattr(loaded.processor, "image_processor", loaded.processor)
    pixel_values = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
    model = loaded.model
    # CLIP-like models: the vision tower alone; ViT classifiers run whole, for their logits.
    tower = getattr(model, "vision_model", None)
    forward = tower if tower is not None else model
    backbone = tower if tower is not None else model.base_model  # holds .embeddings
    patch_size = _patch_size(backbone.config)
    rows, cols = pixel_values.shape[-2] // patch_size, pixel_values.shape[-1] // patch_size

    with torch.inference_mode():
        inputs = loaded.to_device(pixel_values)  # (1, C, H, W)
        outputs = forward(pixel_values=inputs, output_attentions=True)
        if not outputs.attentions or any(a is None for a in outputs.attentions):
            attn = getattr(backbone.config, "_attn_implementation", "unknown")
            raise LabError(
                f"{loaded.spec.title} returned no attention maps: its attention "
                f"implementation is {attn!r}, which does not expose them; "
                "load it with attn_implementation='eager'."
            )
        attentions = torch.stack([a[0] for a in outputs.attentions])  # (L, heads, T, T)
        # The patch-embedding layer, applied to the same pixels: (1, D, rows, cols) → (N, D).
        projection = _patch_projection(backbone)
        patch_embeddings = projection(inputs).flatten(2)[0].T
        positions = _position_table(backbone)  # (positions, D), or None: relative biases
        logits = getattr(outputs, "logits", None)
    notes = _notes(loaded, logits is not None)
    position_note = ""
    if positions is None:
        position_note = relative_positions_note(loaded.spec.title)
        positions = patch_embeddings.new_zeros((0, patch_embeddings.shape[1]))  # (0, D)
    positions, resampled = _positions_on_grid(positions, (rows, cols))
    if resampled:
        notes += (resampled,)

    num_special = attentions.shape[-1] - rows * cols
    if num_special < 0:
        raise LabError(
            f"{loaded.spec.title} produced {attentions.shape[-1]} tokens for a {rows}×{cols} "
            "patch grid; the lab cannot match its tokens to patches."
        )
    keep = torch.float32 if attentions.numel() * 4 <= HALF_PRECISION_ABOVE else torch.float16
    return ViTInspection(
        model_name=loaded.spec.name,
        model_title=loaded.spec.title,
        image=_as_seen(pixel_values[0], processor),
        patch_size=patch_size,
        grid=(rows, cols),
        num_special=num_special,
        attentions=attentions.to(keep).cpu().numpy(),
        patch_pixels=cut_patches(pixel_values[0].float().numpy(), patch_size),
        patch_embeddings=patch_embeddings.float().cpu().numpy(),
        position_embeddings=positions.float().cpu().numpy(),
        predictions=_top_k(logits, model.config) if logits is not None else (),
        notes=notes,
        special_tokens=special_token_names(backbone, num_special),
        position_note=position_note,
    )


def relative_positions_note(title: str) -> str:
    """What the position-embedding view says of a model with relative position biases (BEiT)."""
    return (
        f"{title} has no learned position embeddings to compare: it uses relative position "
        "biases instead, a learned number added to each attention score for every offset "
        "between two patches, so where a patch sits is learned inside each attention layer. "
        "Its patches and attention maps are shown as for any ViT."
    )


def special_token_names(backbone, count: int) -> tuple[str, ...]:
    """What the tokens before the patches are, read from the model: CLS (if it has one), DeiT's
    distillation token, DINOv2's registers; anything else is named by its position."""
    embeddings = getattr(backbone, "embeddings", None)
    names = []
    if isinstance(getattr(embeddings, "cls_token", None), torch.Tensor) or isinstance(
        getattr(embeddings, "class_embedding", None), torch.Tensor  # CLIP
    ):
        names.append(CLS)
    if isinstance(getattr(embeddings, "distillation_token", None), torch.Tensor):
        names.append("distillation")
    registers = getattr(embeddings, "register_tokens", None)
    if isinstance(registers, torch.Tensor):
        names += [f"register {k}" for k in range(1, registers.shape[1] + 1)]
    names += [f"special {k}" for k in range(len(names) + 1, count + 1)]
    return tuple(names[:count])


def _positions_on_grid(positions: torch.Tensor, grid: tuple[int, int]):
    """The table with its patch part laid on the photo's grid: DINOv2 learned 37×37 positions
    (518 px) but sees 16×16 patches of a 224 crop, and interpolates them, bicubic, as here."""
    rows, cols = grid
    total = positions.shape[0]
    for special in range(0, min(total, 8)):
        side = math.isqrt(total - special)
        if side * side == total - special and side > 1:
            break
    else:
        return positions, None
    if (side, side) == grid or special + rows * cols == total:
        return positions, None
    table = positions[special:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    table = torch.nn.functional.interpolate(table, size=grid, mode="bicubic", align_corners=False)
    patches = table.permute(0, 2, 3, 1).reshape(rows * cols, -1).to(positions.dtype)
    note = (
        f"The model learned {side}×{side} patch positions; for this {rows}×{cols} grid they are "
        "interpolated (bicubic), as the model itself does."
    )
    return torch.cat([positions[:special], patches]), note


def cut_patches(pixels: np.ndarray, patch_size: int) -> np.ndarray:
    """(C, H, W) → (rows·cols, C, p, p), row by row, as the patch-embedding conv sees them."""
    c, h, w = pixels.shape
    rows, cols = h // patch_size, w // patch_size
    grid = pixels[:, : rows * patch_size, : cols * patch_size]
    grid = grid.reshape(c, rows, patch_size, cols, patch_size)  # (C, rows, p, cols, p)
    return np.ascontiguousarray(
        grid.transpose(1, 3, 0, 2, 4).reshape(-1, c, patch_size, patch_size)
    )


def _patch_size(config) -> int:
    size = config.patch_size
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise LabError(
                "The lab shows square patches only; this model's patches are not square."
            )
        size = size[0]
    return int(size)


def _patch_projection(backbone) -> torch.nn.Conv2d:
    """The conv with kernel = stride = p that projects each patch to D numbers."""
    try:
        layer = backbone.get_input_embeddings()  # ViT: ViTPatchEmbeddings; CLIP: the Conv2d itself
    except (AttributeError, NotImplementedError):
        layer = backbone.embeddings
    convs = [m for m in layer.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise LabError("This model has no convolutional patch embedding the lab can show.")
    return convs[0]


def _position_table(backbone) -> torch.Tensor | None:
    """The learned position embeddings as (positions, D), special positions first; None for a
    model that uses relative position biases in its attention instead (BEiT)."""
    embeddings = backbone.embeddings
    table = getattr(embeddings, "position_embeddings", None)  # ViT: a (1, T, D) parameter
    if isinstance(table, torch.Tensor):
        return table.detach().reshape(-1, table.shape[-1])
    layer = getattr(embeddings, "position_embedding", None)  # CLIP, SigLIP: an nn.Embedding
    if isinstance(layer, torch.nn.Embedding):
        return layer.weight.detach()
    config = backbone.config
    if getattr(config, "use_relative_position_bias", False) or getattr(
        config, "use_shared_relative_position_bias", False
    ):
        return None
    raise LabError("This model has no learned position embeddings the lab can show.")


def _as_seen(pixel_values: torch.Tensor, processor) -> Image.Image:
    """Undo the processor's normalisation: (C, H, W) model input → the RGB picture it shows."""
    x = pixel_values.float().numpy().transpose(1, 2, 0)  # (H, W, C)
    if getattr(processor, "do_normalize", False):
        x = x * np.asarray(processor.image_std, np.float32) + np.asarray(
            processor.image_mean, np.float32
        )
    if getattr(processor, "do_rescale", False):
        x = x / float(processor.rescale_factor)
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8)).convert("RGB")


def _top_k(logits: torch.Tensor, config) -> tuple[tuple[str, float], ...]:
    probabilities = logits[0].float().softmax(-1).cpu()
    values, indices = probabilities.topk(min(TOP_K, probabilities.numel()))
    labels = config.id2label
    return tuple((str(labels.get(int(i), i)), float(v)) for v, i in zip(values, indices))


def _notes(loaded: LoadedModel, has_head: bool) -> tuple[str, ...]:
    title, model = loaded.spec.title, loaded.model
    notes = []
    if hasattr(model, "vision_model"):
        notes.append(
            f"This is the vision tower of {title}: it has no classifier of its own, so there are "
            "no predictions here (the CLIP tab classifies by comparing the photo with label texts)."
        )
        if hasattr(model.vision_model, "pre_layrnorm"):
            notes.append(
                "CLIP normalises the tokens with an extra LayerNorm before the first layer."
            )
    elif not has_head:
        notes.append(
            f"{title} has no classifier head (it learned without labels), so it makes no "
            "predictions; look at where its CLS token attends instead."
        )
    return tuple(notes)


# ---------------------------------------------------------------------------------------------
# Choosing a layer, a head and a query (checked here: the browser's limits are not limits)


def whole_number(value, what: str) -> int:
    """`value` as an int if it is a whole number (int, 3.0, " 3 "), else a `LabError`."""
    message = f"The {what} must be a whole number, not {str(value)[:20]!r}."
    return checks.whole_number(value, what, text=True, message=message)


def check_layer(inspection: ViTInspection, layer) -> int:
    """A layer number 1…L, or a `LabError` that names the range."""
    n = inspection.num_layers
    number = whole_number(layer, "layer")
    if not 1 <= number <= n:
        raise LabError(f"The layer must be between 1 and {n}: this model has {n} layers.")
    return number


def check_head(inspection: ViTInspection, head) -> int | None:
    """A head number 1…H, or None for the mean over heads ("mean")."""
    n = inspection.num_heads
    if head is None or (isinstance(head, str) and head.strip().lower() in (MEAN, "")):
        return None
    try:
        number = whole_number(head, "head")
    except LabError:
        raise LabError(
            f"The head must be mean or a number from 1 to {n}, not {str(head)[:20]!r}."
        ) from None
    if not 1 <= number <= n:
        raise LabError(f"The head must be between 1 and {n}, or mean: this model has {n} heads.")
    return number


def query_token(inspection: ViTInspection, query) -> int:
    """The token index of a query: "CLS" → 0, patch k (1…N) → special tokens + k − 1."""
    rows, cols = inspection.grid
    n = inspection.num_patches
    if query is None or (isinstance(query, str) and query.strip().upper() in (CLS, "")):
        if not inspection.has_cls:
            raise LabError(f"This model has no CLS token; pick a patch from 1 to {n}.")
        return 0
    try:
        number = whole_number(query, "query patch")
    except LabError:
        raise LabError(
            f"The query must be CLS or a patch number from 1 to {n}, not {str(query)[:20]!r}."
        ) from None
    if not 1 <= number <= n:
        where = f"outside the {rows}×{cols} grid"
        raise LabError(f"Patch {number} is {where}: pick a patch from 1 to {n}, or CLS.")
    return inspection.num_special + number - 1


def query_label(inspection: ViTInspection, token: int) -> str:
    if token < inspection.num_special:
        if token < len(inspection.special_tokens):
            return inspection.special_tokens[token]
        return CLS if token == 0 else f"register {token}"
    return f"patch {token - inspection.num_special + 1}"


# ---------------------------------------------------------------------------------------------
# Views of the captured numbers (no model runs here)


@dataclass(frozen=True, eq=False)
class AttentionMap:
    """Where one query token attends, laid out on the patch grid."""

    weights: np.ndarray  # (rows, cols): attention to each patch
    to_special: float  # attention left on CLS / registers (rows sum to 1 with the patches)
    query_token: int
    query: str  # "CLS" or "patch 37"
    layer: int  # 1-based
    source: str  # "head 3", "mean of 12 heads", "rollout through layers 1–12"


def attention_map(inspection: ViTInspection, layer, head=MEAN, query=CLS) -> AttentionMap:
    """The query's attention in `layer`, for one head or the mean over heads."""
    layer = check_layer(inspection, layer)
    head = check_head(inspection, head)
    token = query_token(inspection, query)
    heads = inspection.attentions[layer - 1, :, token, :].astype(np.float32)  # (heads, T)
    row = heads.mean(0) if head is None else heads[head - 1]
    source = f"mean of {inspection.num_heads} heads" if head is None else f"head {head}"
    return _on_grid(inspection, row, token, layer, source)


def head_maps(inspection: ViTInspection, layer, query=CLS) -> list[AttentionMap]:
    """Every head of `layer` for one query (small multiples), then their mean."""
    maps = [attention_map(inspection, layer, h, query) for h in range(1, inspection.num_heads + 1)]
    return maps + [attention_map(inspection, layer, MEAN, query)]


def rollout_map(inspection: ViTInspection, query=CLS, layer=None) -> AttentionMap:
    """The query's rolled-out attention through layers 1…`layer` (default: all)."""
    layer = inspection.num_layers if layer is None else check_layer(inspection, layer)
    token = query_token(inspection, query)
    row = inspection.rollout[layer - 1, token]
    return _on_grid(inspection, row, token, layer, f"rollout through layers 1–{layer}")


def _on_grid(inspection: ViTInspection, row: np.ndarray, token: int, layer: int, source: str):
    special = inspection.num_special
    return AttentionMap(
        weights=row[special:].reshape(inspection.grid),
        to_special=float(row[:special].sum()),
        query_token=token,
        query=query_label(inspection, token),
        layer=layer,
        source=source,
    )


def attention_rollout(attentions: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema (2020): per layer, mean over heads + identity (the residual), rows
    renormalised, multiplied through the layers. (L, heads, T, T) → (L, T, T), one per depth."""
    a = torch.from_numpy(np.asarray(attentions, dtype=np.float32)).mean(1)  # (L, T, T)
    a = a + torch.eye(a.shape[-1])
    a = a / a.sum(-1, keepdim=True)
    rolled = torch.empty_like(a)
    product = torch.eye(a.shape[-1])
    for i in range(a.shape[0]):
        product = a[i] @ product  # layer i mixes what layers before it mixed
        rolled[i] = product
    return rolled.numpy()


def position_similarity(inspection: ViTInspection) -> np.ndarray:
    """Cosine similarity of each patch position's embedding with every other:
    (rows, cols, rows, cols), as in the ViT paper's Figure 7 (centre)."""
    if inspection.position_note:
        raise LabError(inspection.position_note)
    positions = inspection.position_embeddings[-inspection.num_patches :]  # (N, D), patches only
    unit = positions / np.linalg.norm(positions, axis=1, keepdims=True).clip(1e-12)
    return (unit @ unit.T).reshape(*inspection.grid, *inspection.grid)


def check_patch(inspection: ViTInspection, patch) -> int:
    """A patch number 1…N (CLS has no pixels of its own)."""
    token = query_token(inspection, patch)
    if token < inspection.num_special:
        raise LabError(f"Pick a patch from 1 to {inspection.num_patches}; CLS has no pixels.")
    return token - inspection.num_special + 1


def patch_vector(inspection: ViTInspection, patch) -> np.ndarray:
    """Patch k's C×p×p numbers flattened (channel, row, column) to one C·p²-vector."""
    return inspection.patch_pixels[check_patch(inspection, patch) - 1].reshape(-1)


# ---------------------------------------------------------------------------------------------
# Words for both faces


def describe_model(inspection: ViTInspection) -> str:
    """One paragraph: the photo's journey from pixels to tokens, with this model's numbers."""
    i = inspection
    (rows, cols), p, c = i.grid, i.patch_size, i.channels
    special = {0: "no CLS token", 1: "1 CLS token"}.get(
        i.num_special, f"{i.num_special} special tokens"
    )
    if i.num_special > 1 and len(i.special_tokens) == i.num_special:
        special += f" ({_special_words(i.special_tokens)})"
    return (
        f"{i.model_title}: the photo becomes {i.image.width}×{i.image.height} pixels → "
        f"{rows}×{cols} = {i.num_patches} patches of {c}×{p}×{p} = {c * p * p:,} numbers, "
        f"each projected to D = {i.hidden_size}; with {special} that is {i.num_tokens} tokens, "
        f"through {i.num_layers} layers × {i.num_heads} heads."
    )


def _special_words(names: tuple[str, ...]) -> str:
    registers = sum(name.startswith("register") for name in names)
    words = [name for name in names if not name.startswith("register")]
    if registers:
        words.append(f"{registers} register{'s' if registers > 1 else ''}")
    return " + ".join(words)


def describe_attention(inspection: ViTInspection, view: AttentionMap, top: int = 3) -> str:
    """Where a query looks most, in words."""
    order = np.argsort(view.weights, axis=None)[::-1][:top]
    strongest = ", ".join(f"patch {k + 1} ({view.weights.flat[k]:.1%})" for k in order)
    special = ""
    if inspection.num_special:
        name = CLS if inspection.num_special == 1 else "the special tokens"
        special = f" {view.to_special:.1%} stays on {name}."
    what = f"layer {view.layer}, {view.source}" if "rollout" not in view.source else view.source
    return f"{view.query} ({what}) attends most to {strongest}.{special}"


def head_choices(inspection: ViTInspection) -> list[str]:
    """What a head may be chosen as: the mean over heads, then every head's number."""
    return [MEAN] + [str(h) for h in range(1, inspection.num_heads + 1)]
