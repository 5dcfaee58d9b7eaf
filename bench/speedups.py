"""Optional speed-ups, each measured against the lab's default (float32, contiguous, eager) and
none switched on silently: bfloat16 on CPUs that support it (with its drift from float32),
channels-last memory for CNNs, and `torch.compile`."""

from __future__ import annotations

import copy
import time

import torch

from bench.harness import Row, interleave, ms, times
from bench.inputs import photos
from bench.world import CLIP_B32

AREA = "speed-ups"
NEEDS = {CLIP_B32, "resnet50", "alexnet"}


def rows(ctx) -> list[Row]:
    out = [bf16_clip(ctx), bf16_mobilenet(ctx)]
    out += [channels_last(ctx, name) for name in ("resnet50", "alexnet")]
    if ctx.compile != "none":
        out.append(compiled(ctx, ctx.compile))
    return out


def _faster(what: str, peer: str, pair, note: str) -> Row:
    return Row(
        AREA,
        what,
        peer,
        ms(pair.ours),
        ms(pair.peer),
        f"{times(pair.peer / pair.ours)} faster",
        note=note,
    )


def _bf16_ok(device: torch.device) -> bool:
    return (
        device.type == "cuda"
        or torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def bf16_clip(ctx) -> Row:
    """CLIP ViT-B/32's image encoder on a batch of 8, float32 against a bfloat16 copy."""
    from vlmlab.models import load_model

    loaded = load_model(CLIP_B32)
    what = "CLIP ViT-B/32 image encoder, batch 8, bfloat16"
    if loaded.dtype != torch.float32 or not _bf16_ok(loaded.device):
        return Row(
            AREA, what, note=f"not measured: the model runs in {loaded.dtype} on {loaded.device}"
        )
    half = copy.deepcopy(loaded.model).to(torch.bfloat16)
    pixels = loaded.processor.image_processor(images=list(photos(8)), return_tensors="pt")[
        "pixel_values"
    ]
    pixels = pixels.to(loaded.device)

    def embed(model, dtype):
        with torch.inference_mode():
            out = model.get_image_features(pixel_values=pixels.to(dtype)).pooler_output.float()
        return out / out.norm(dim=-1, keepdim=True)

    pair = interleave(
        lambda _: embed(half, torch.bfloat16),
        lambda _: embed(loaded.model, torch.float32),
        repeats=ctx.scaled(8),
    )
    cosine = (embed(half, torch.bfloat16) * embed(loaded.model, torch.float32)).sum(-1).min().item()
    return _faster(
        what,
        "float32",
        pair,
        f"embeddings drift: cosine to float32 ≥ {cosine:.4f} (random weights)",
    )


def bf16_mobilenet(ctx) -> Row:
    """Real ImageNet weights (MobileNetV2): does bfloat16 change the answers?"""
    from vlmlab.images import sample_images
    from vlmlab.models import ModelUnavailableError, load_model

    what = "MobileNetV2 (real weights), batch 6, bfloat16"
    try:
        loaded = load_model("mobilenet_v2")
    except ModelUnavailableError:
        return Row(AREA, what, note="not measured: the real MobileNetV2 weights are not installed")
    if loaded.dtype != torch.float32 or not _bf16_ok(loaded.device):
        return Row(
            AREA, what, note=f"not measured: the model runs in {loaded.dtype} on {loaded.device}"
        )
    half = copy.deepcopy(loaded.model).to(torch.bfloat16)
    batch = torch.stack([loaded.processor(p) for p in sample_images().values()]).to(loaded.device)

    def probs(model, dtype):
        with torch.inference_mode():
            return model(batch.to(dtype)).float().softmax(-1)

    pair = interleave(
        lambda _: probs(half, torch.bfloat16),
        lambda _: probs(loaded.model, torch.float32),
        repeats=ctx.scaled(10),
    )
    low, full = probs(half, torch.bfloat16), probs(loaded.model, torch.float32)
    same = int((low.argmax(-1) == full.argmax(-1)).sum())
    top5 = [
        set(a.topk(5).indices.tolist()) == set(b.topk(5).indices.tolist())
        for a, b in zip(low, full)
    ]
    drift = (low - full).abs().max().item()
    return _faster(
        what, "float32", pair,
        f"top-1 same on {same}/{len(full)} sample photos, top-5 set same on {sum(top5)}/{len(full)}, "
        f"largest probability change {drift:.3f}",
    )  # fmt: skip


def channels_last(ctx, name: str) -> Row:
    from vlmlab.models import load_model

    loaded = load_model(name)
    nhwc = copy.deepcopy(loaded.model).to(memory_format=torch.channels_last)
    x = loaded.processor(photos(1)[0])[None].to(loaded.device, loaded.dtype)
    x_nhwc = x.contiguous(memory_format=torch.channels_last)

    def run(model, inputs):
        with torch.inference_mode():
            return model(inputs)

    pair = interleave(
        lambda _: run(nhwc, x_nhwc),
        lambda _: run(loaded.model, x),
        repeats=ctx.scaled(12),
        warmup=2,
    )
    same = torch.allclose(run(nhwc, x_nhwc), run(loaded.model, x), atol=1e-4, rtol=1e-3)
    return _faster(
        f"{name}, batch 1, channels-last", "contiguous (NCHW)", pair, f"same logits: {same}"
    )


def compiled(ctx, name: str) -> Row:
    from vlmlab.models import load_model

    what = f"{name}, batch 1, torch.compile"
    loaded = load_model(name)
    x = loaded.processor(photos(1)[0])[None].to(loaded.device, loaded.dtype)
    try:
        fast = torch.compile(copy.deepcopy(loaded.model))
        start = time.perf_counter()
        with torch.inference_mode():
            fast(x)
        compile_s = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - no compiler here, or an unsupported graph
        return Row(AREA, what, note=f"not measured: {type(error).__name__}: {str(error)[:120]}")

    def run(model):
        with torch.inference_mode():
            return model(x)

    pair = interleave(
        lambda _: run(fast), lambda _: run(loaded.model), repeats=ctx.scaled(12), warmup=2
    )
    return _faster(what, "eager", pair, f"the first call compiles for {compile_s:.0f} s")
