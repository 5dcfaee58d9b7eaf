"""Where in the photo: the relevance rule of Chefer, Gur & Wolf (ICCV 2021, "Generic Attention-
model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers"), shared by the
CLIP and VQA views, and the words every grounding view shows beside its maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vlmlab.checks import whole_number
from vlmlab.errors import LabError

NOTE = (
    "Attention and relevance maps are evidence of what the computation used, not an explanation "
    "of why the model concluded what it did."
)
MAX_MAPS = 12  # maps one view draws; the rest are named in a note


def chefer_relevance(
    attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The rule for self-attention: R = I, then for each layer R ← R + Ā·R, with
    Ā = mean over heads of (∂target/∂A ⊙ A) clamped at 0 (the clamp before the mean, as in the
    authors' code). `attentions` and `gradients`: one (B, heads, T, T) tensor per layer, in
    order. Returns R, (B, T, T) float32."""
    if not attentions:
        raise LabError("There are no attention layers to follow.")
    batch, _, tokens, _ = attentions[0].shape
    device = attentions[0].device
    eye = torch.eye(tokens, device=device, dtype=torch.float32)
    relevance = eye.expand(batch, tokens, tokens).clone()
    for attention, gradient in zip(attentions, gradients, strict=True):
        cam = (gradient.float() * attention.float()).clamp(min=0).mean(dim=1)  # (B, T, T)
        relevance = relevance + torch.bmm(cam, relevance)
    return relevance


def no_attentions(model_name: str) -> LabError:
    """The sentence for a model that returned no attention maps."""
    return LabError(
        f"{model_name} returned no attention maps, so the lab cannot show where it looked; "
        "load it with attn_implementation='eager'."
    )


def check_layer(layer, layers: int) -> int | None:
    """A 1-based layer number (None: all of them), or a `LabError` that says the range."""
    if layer is None:
        return None
    message = f"The layer must be a whole number from 1 to {layers} (or none: all)."
    return whole_number(layer, "layer", 1, layers, message=message)


def as_grid(values: torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """(..., rows·cols) patch values → (..., rows, cols) float32 on the CPU, never negative."""
    grid = values.detach().float().clamp(min=0).cpu().numpy()
    return grid.reshape(*grid.shape[:-1], rows, cols).astype(np.float32)
