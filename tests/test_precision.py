"""bfloat16 on the CPU: a switch (`python app.py --cpu-dtype bfloat16`), never the default.

Every topic runs its models in it and agrees with float32 within what bfloat16 keeps (8 bits of
mantissa); results computed in one precision are never served for the other.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmlab import captioning, clip, cnn, vit, vqa
from vlmlab.cnn import gradcam
from vlmlab.device import dtype_for, set_cpu_dtype
from vlmlab.models import load_model

CNN = "mobilenet_v2"  # real ImageNet weights in the test world
LABELS = ["a cat", "a dog", "a cup of coffee"]


def everything(photo) -> dict:
    """One call per topic, on the models the tabs use by default (tiny ones in the test world)."""
    inspection = vit.inspect_vit(photo)
    return {
        "classify": dict(cnn.classify(photo, CNN, top_k=5)),
        "channels": cnn.capture_features(photo, CNN).maps["block5"].astype(np.float32),
        "grad_cam": gradcam.grad_cam(photo, CNN, "Egyptian cat").heat,
        "attention": inspection.attentions.astype(np.float32),
        "zero_shot": dict(clip.zero_shot(photo, LABELS)),
        "similarity": clip.similarity([photo], LABELS),
        "caption": captioning.caption(photo, max_new_tokens=5),
        "answer": vqa.answer(photo, "What animal is this?", top_k=3),
    }


@pytest.fixture
def precision():
    yield set_cpu_dtype
    set_cpu_dtype("float32")


def test_float32_is_the_default_and_names_are_checked(precision):
    assert dtype_for(torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="float32, bfloat16"):
        precision("float16")
    precision("bfloat16")
    assert dtype_for(torch.device("cpu")) == torch.bfloat16
    assert dtype_for(torch.device("cuda")) == torch.float16  # GPUs keep half precision


def test_every_topic_runs_in_bfloat16_and_agrees_with_float32(chelsea, precision):
    full = everything(chelsea)
    precision("bfloat16")
    assert load_model(CNN).dtype == torch.bfloat16 and load_model(CNN).model.training is False
    half = everything(chelsea)

    top = max(full["classify"], key=full["classify"].get)
    assert max(half["classify"], key=half["classify"].get) == top  # the real network agrees
    assert half["classify"][top] == pytest.approx(full["classify"][top], abs=0.1)
    assert half["classify"] != full["classify"]  # computed again, not served from float32's cache
    assert half["channels"].shape == full["channels"].shape
    assert np.corrcoef(half["channels"].ravel(), full["channels"].ravel())[0, 1] > 0.99
    assert half["grad_cam"].shape == full["grad_cam"].shape
    assert np.corrcoef(half["grad_cam"].ravel(), full["grad_cam"].ravel())[0, 1] > 0.9
    assert half["attention"].shape == full["attention"].shape
    np.testing.assert_allclose(half["attention"], full["attention"], atol=0.05)
    np.testing.assert_allclose(half["attention"].sum(-1), 1.0, atol=0.02)
    for label, p in full["zero_shot"].items():
        assert half["zero_shot"][label] == pytest.approx(p, abs=0.05)
    np.testing.assert_allclose(half["similarity"], full["similarity"], atol=0.02)
    assert half["similarity"].dtype == full["similarity"].dtype == np.float32
    assert half["caption"].tokens and all(0 <= t.probability <= 1 for t in half["caption"].tokens)
    assert [a for a, _ in half["answer"]] and all(0 <= p <= 1 for _, p in half["answer"])


def test_app_takes_the_precision_as_a_flag(monkeypatch, precision):
    import app

    monkeypatch.setattr(app.demo, "launch", lambda **options: None)
    app.main([])
    assert dtype_for(torch.device("cpu")) == torch.float32
    app.main(["--cpu-dtype", "bfloat16"])
    assert dtype_for(torch.device("cpu")) == torch.bfloat16
