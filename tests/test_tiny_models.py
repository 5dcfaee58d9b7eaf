"""The offline model world of tests/conftest.py: tiny real-format checkpoints under the real ids.

Every default model id loads through `from_pretrained` with `HF_HUB_OFFLINE=1`, its processor
works on a real photo, a forward runs, and the shapes differ from the real checkpoints. The real
MobileNetV2 ImageNet weights classify real photos.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_models
import torch
from tiny_models import (
    BLIP_CAPTION_IDS,
    BLIP_VQA_ID,
    CLIP_IDS,
    DINO_ID,
    MODEL_IDS,
    TINY_SPECS,
    VILT_ID,
    VIT_ID,
)

# ImageNet ids: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat; 967 espresso.
CAT_CLASSES = set(range(281, 286))
ESPRESSO = 967


# ---------------------------------------------------------------------------------------------
# The environment and the cache layout
# ---------------------------------------------------------------------------------------------


def test_environment_points_at_the_session_caches(hf_home, torch_home):
    import huggingface_hub.constants as hub_constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert Path(os.environ["HF_HOME"]) == hf_home
    assert Path(os.environ["TORCH_HOME"]) == torch_home
    assert hub_constants.HF_HUB_OFFLINE
    assert Path(hub_constants.HF_HUB_CACHE) == hf_home / "hub"
    assert Path(torch.hub.get_dir()) == torch_home / "hub"


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_cache_has_the_standard_layout(hf_home, model_id):
    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    revision = (repo / "refs" / "main").read_text()
    assert revision == tiny_models.revision_of(model_id)
    assert len(revision) == 40 and int(revision, 16) >= 0
    snapshot = repo / "snapshots" / revision
    assert (snapshot / "config.json").is_file()
    assert (snapshot / "model.safetensors").is_file()
    assert (snapshot / "preprocessor_config.json").is_file()


def test_scan_cache_dir_sees_every_model(hf_home):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hf_home / "hub")
    assert not info.warnings
    assert {repo.repo_id for repo in info.repos} == set(MODEL_IDS)
    assert info.size_on_disk < 20 * 2**20  # tiny: a few MB for all of them


def test_the_build_is_deterministic(tmp_path, hf_home):
    tiny_models.build_tiny_hub(tmp_path, [DINO_ID])
    name = "models--" + DINO_ID.replace("/", "--")
    rev = tiny_models.revision_of(DINO_ID)
    ours = tmp_path / "hub" / name / "snapshots" / rev / "model.safetensors"
    session = hf_home / "hub" / name / "snapshots" / rev / "model.safetensors"
    assert ours.read_bytes() == session.read_bytes()


def test_a_model_missing_from_the_cache_fails_fast():
    from transformers import AutoConfig, AutoProcessor, CLIPModel

    start = time.perf_counter()
    for load in (
        CLIPModel.from_pretrained,
        AutoProcessor.from_pretrained,
        AutoConfig.from_pretrained,
    ):
        with pytest.raises(OSError):
            load("openai/clip-vit-base-patch99")
    assert time.perf_counter() - start < 5


def test_a_subprocess_inherits_the_offline_cache():
    code = (
        "from transformers import AutoConfig, AutoTokenizer\n"
        f"c = AutoConfig.from_pretrained({VIT_ID!r})\n"
        f"t = AutoTokenizer.from_pretrained({CLIP_IDS[0]!r})\n"
        "print(c.image_size, c.patch_size, t.model_max_length)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    spec = TINY_SPECS[VIT_ID]
    assert out.stdout.split() == [str(spec["image_size"]), str(spec["patch_size"]), "77"]


# ---------------------------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_models():
    from transformers import CLIPModel, CLIPProcessor

    return {
        model_id: (
            CLIPModel.from_pretrained(model_id, attn_implementation="eager").eval(),
            CLIPProcessor.from_pretrained(model_id),
        )
        for model_id in CLIP_IDS
    }


@pytest.mark.parametrize("model_id", CLIP_IDS)
def test_clip_loads_and_scores_a_real_photo(clip_models, chelsea, model_id):
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, CLIPImageProcessor

    model, processor = clip_models[model_id]
    assert type(processor).__name__ == "CLIPProcessor"
    assert type(AutoProcessor.from_pretrained(model_id)).__name__ == "CLIPProcessor"
    assert isinstance(AutoImageProcessor.from_pretrained(model_id), CLIPImageProcessor)
    assert type(AutoTokenizer.from_pretrained(model_id)).__name__ == "CLIPTokenizer"

    labels = ["a photo of a cat", "a photo of a dog", "a sketch of a red sports car 🚗"]
    inputs = processor(text=labels, images=chelsea, return_tensors="pt", padding=True)
    vision = model.config.vision_config
    assert inputs["pixel_values"].shape == (1, 3, vision.image_size, vision.image_size)
    with torch.inference_mode():
        out = model(**inputs, output_attentions=True)
    assert out.logits_per_image.shape == (1, len(labels))
    assert torch.isfinite(out.logits_per_image).all()
    grid = vision.image_size // vision.patch_size
    assert grid == TINY_SPECS[model_id]["grid"]
    tokens = 1 + grid * grid
    assert out.vision_model_output.attentions[0].shape == (
        1,
        vision.num_attention_heads,
        tokens,
        tokens,
    )
    assert len(out.vision_model_output.attentions) == vision.num_hidden_layers


def test_clip_shapes_differ_from_the_real_ones_and_from_each_other(clip_models):
    real_grids = {7, 14, 16}  # 224/32, 224/16, 224/14
    grids = []
    for model, _ in clip_models.values():
        vision = model.config.vision_config
        assert vision.image_size != 224
        grids.append(vision.image_size // vision.patch_size)
    assert len(set(grids)) == len(grids)
    assert not set(grids) & (real_grids - {7}) and grids[0] != 7
    widths = {m.config.projection_dim for m, _ in clip_models.values()}
    assert len(widths) > 1


def test_clip_tokenizer_handles_emoji_accents_and_punctuation(clip_models):
    tokenizer = clip_models[CLIP_IDS[0]][1].tokenizer
    text = "A photo of a cat 🐱, naïve café — ¿qué? 東京 😀👍🏽"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids[1:-1]  # every byte is in the vocabulary
    decoded = tokenizer.decode(ids, skip_special_tokens=True)  # CLIP puts spaces between words
    assert decoded.replace(" ", "") == text.lower().replace(" ", "")
    # Common words are whole tokens, as in the real vocabulary.
    assert tokenizer.tokenize("a photo of a cat") == [
        "a</w>",
        "photo</w>",
        "of</w>",
        "a</w>",
        "cat</w>",
    ]
    words = [w for w in tiny_models._WORD_LIST if w.isalpha()]
    assert all(len(tokenizer.tokenize(w)) == 1 for w in words)


def test_clip_keeps_the_77_token_limit(clip_models, chelsea):
    model, processor = clip_models[CLIP_IDS[1]]
    tokenizer = processor.tokenizer
    long_text = "a very long description of a tabby cat sitting on a red couch " * 20
    assert tokenizer.model_max_length == 77
    assert model.config.text_config.max_position_embeddings == 77
    assert len(tokenizer(long_text)["input_ids"]) > 77
    truncated = processor(text=[long_text], images=chelsea, return_tensors="pt", truncation=True)
    assert truncated["input_ids"].shape == (1, 77)
    assert truncated["input_ids"][0, -1] == tokenizer.eos_token_id
    with torch.inference_mode():
        assert model(**truncated).logits_per_text.shape == (1, 1)


# ---------------------------------------------------------------------------------------------
# ViT classifier and DINO
# ---------------------------------------------------------------------------------------------


def test_vit_classifier_loads_and_classifies_a_real_photo(chelsea):
    from transformers import (
        AutoImageProcessor,
        AutoProcessor,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    model = ViTForImageClassification.from_pretrained(VIT_ID, attn_implementation="eager").eval()
    processor = AutoImageProcessor.from_pretrained(VIT_ID)
    assert isinstance(processor, ViTImageProcessor)
    assert isinstance(AutoProcessor.from_pretrained(VIT_ID), ViTImageProcessor)
    inputs = processor(images=chelsea, return_tensors="pt")
    config = model.config
    assert inputs["pixel_values"].shape == (1, 3, config.image_size, config.image_size)
    with torch.inference_mode():
        out = model(**inputs, output_attentions=True)
    assert out.logits.shape == (1, config.num_labels)
    assert config.num_labels == len(tiny_models.VIT_LABELS)
    assert "tabby, tabby cat" in config.label2id
    assert config.id2label[int(out.logits.argmax())] in tiny_models.VIT_LABELS
    grid = config.image_size // config.patch_size
    assert grid == TINY_SPECS[VIT_ID]["grid"] and grid != 14  # not the real 224/16
    assert len(out.attentions) == config.num_hidden_layers == 3
    assert out.attentions[0].shape == (
        1,
        config.num_attention_heads,
        1 + grid * grid,
        1 + grid * grid,
    )


def test_dino_loads_as_a_bare_backbone(chelsea):
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open
    from transformers import AutoImageProcessor, AutoModel, ViTModel

    with safe_open(hf_hub_download(DINO_ID, "model.safetensors"), framework="pt") as weights:
        names = list(weights.keys())
    assert names and not [n for n in names if n.startswith(("classifier", "pooler"))]
    model = ViTModel.from_pretrained(
        DINO_ID, attn_implementation="eager", add_pooling_layer=False
    ).eval()
    assert type(AutoModel.from_pretrained(DINO_ID, add_pooling_layer=False)) is ViTModel
    processor = AutoImageProcessor.from_pretrained(DINO_ID)
    inputs = processor(images=chelsea, return_tensors="pt")
    config = model.config
    assert inputs["pixel_values"].shape == (1, 3, config.image_size, config.image_size)
    with torch.inference_mode():
        out = model(**inputs, output_attentions=True)
    grid = config.image_size // config.patch_size
    assert grid == TINY_SPECS[DINO_ID]["grid"] != TINY_SPECS[VIT_ID]["grid"]
    assert out.last_hidden_state.shape == (1, 1 + grid * grid, config.hidden_size)
    assert out.attentions[-1].shape == (1, 4, 1 + grid * grid, 1 + grid * grid)


# ---------------------------------------------------------------------------------------------
# BLIP captioning and VQA
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", BLIP_CAPTION_IDS)
def test_blip_captions_a_real_photo(chelsea, model_id):
    from transformers import AutoProcessor, BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(model_id).eval()
    processor = AutoProcessor.from_pretrained(model_id)
    assert isinstance(processor, BlipProcessor)
    tokenizer = processor.tokenizer
    assert (
        tokenizer.bos_token == "[DEC]"
        and model.config.text_config.bos_token_id == tokenizer.bos_token_id
    )
    assert model.config.text_config.sep_token_id == tokenizer.sep_token_id

    inputs = processor(images=chelsea, return_tensors="pt")
    size = model.config.vision_config.image_size
    assert inputs["pixel_values"].shape == (1, 3, size, size) and size != 384
    out = model.generate(**inputs, max_new_tokens=10)
    assert out[0, 0] == tokenizer.bos_token_id and out.shape[1] <= 11
    caption = processor.decode(out[0], skip_special_tokens=True)
    assert caption.strip() and "[" not in caption

    inputs = processor(images=chelsea, text="a picture of", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=10)
    caption = processor.decode(out[0], skip_special_tokens=True)
    assert caption.startswith("a picture of") and len(caption) > len("a picture of")

    batch = processor(images=[chelsea, chelsea], return_tensors="pt")
    assert (
        len(
            processor.batch_decode(
                model.generate(**batch, max_new_tokens=5), skip_special_tokens=True
            )
        )
        == 2
    )


def test_blip_base_and_large_differ():
    from transformers import AutoConfig

    base, large = (AutoConfig.from_pretrained(m).vision_config for m in BLIP_CAPTION_IDS)
    assert (base.image_size, base.hidden_size) != (large.image_size, large.hidden_size)


def test_blip_answers_a_question_about_a_real_photo(chelsea):
    from transformers import AutoProcessor, BlipForQuestionAnswering, BlipProcessor

    model = BlipForQuestionAnswering.from_pretrained(BLIP_VQA_ID).eval()
    processor = AutoProcessor.from_pretrained(BLIP_VQA_ID)
    assert isinstance(processor, BlipProcessor)
    inputs = processor(images=chelsea, text="what is this?", return_tensors="pt")
    assert "token_type_ids" not in inputs
    out = model.generate(**inputs, max_new_tokens=5)
    assert out[0, 0] == processor.tokenizer.bos_token_id
    assert isinstance(processor.decode(out[0], skip_special_tokens=True), str)


# ---------------------------------------------------------------------------------------------
# ViLT VQA
# ---------------------------------------------------------------------------------------------


def test_vilt_answers_a_question_about_a_real_photo(chelsea):
    from transformers import AutoProcessor, ViltForQuestionAnswering, ViltProcessor

    model = ViltForQuestionAnswering.from_pretrained(VILT_ID, attn_implementation="eager").eval()
    processor = AutoProcessor.from_pretrained(VILT_ID)
    assert isinstance(processor, ViltProcessor)
    inputs = processor(images=chelsea, text="How many cats are there?", return_tensors="pt")
    spec = TINY_SPECS[VILT_ID]
    # The shorter edge goes to 64 and both sides to multiples of 16: 300x451 -> 64x96.
    assert inputs["pixel_values"].shape == (1, 3, 64, 96)
    assert inputs["pixel_mask"].shape == (1, 64, 96)
    with torch.inference_mode():
        out = model(**inputs, output_attentions=True)
    assert out.logits.shape == (1, len(tiny_models.VILT_ANSWERS))
    assert model.config.id2label[int(out.logits.argmax())] in tiny_models.VILT_ANSWERS
    text_tokens = inputs["input_ids"].shape[1]
    patches = (64 // spec["patch_size"]) * (96 // spec["patch_size"])
    assert out.attentions[0].shape[-1] == text_tokens + 1 + patches


def test_vilt_text_is_limited_to_40_tokens(chelsea):
    from transformers import AutoProcessor, ViltForQuestionAnswering

    model = ViltForQuestionAnswering.from_pretrained(VILT_ID).eval()
    processor = AutoProcessor.from_pretrained(VILT_ID)
    question = "what colour is the cat that is sitting on the red couch next to the table " * 5
    assert processor.tokenizer.model_max_length == model.config.max_position_embeddings == 40
    inputs = processor(images=chelsea, text=question, return_tensors="pt", truncation=True)
    assert inputs["input_ids"].shape[1] == 40
    with torch.inference_mode():
        assert model(**inputs).logits.shape[0] == 1
    untruncated = processor(images=chelsea, text=question, return_tensors="pt")
    assert untruncated["input_ids"].shape[1] > 40
    with pytest.raises((RuntimeError, IndexError)), torch.inference_mode():
        model(**untruncated)


# ---------------------------------------------------------------------------------------------
# Real torchvision weights
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet():
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    return mobilenet_v2(weights="IMAGENET1K_V1").eval(), weights


def _top3(mobilenet, image) -> list[int]:
    model, weights = mobilenet
    with torch.inference_mode():
        logits = model(weights.transforms()(image).unsqueeze(0))
    return logits[0].topk(3).indices.tolist()


def test_mobilenet_weights_are_in_torch_home(torch_home):
    checkpoint = torch_home / "hub" / "checkpoints" / tiny_models.MOBILENET_V2_FILE
    assert checkpoint.is_file() and checkpoint.stat().st_size > 10 * 2**20


def test_real_mobilenet_sees_a_cat_in_chelsea(mobilenet, chelsea):
    top3 = _top3(mobilenet, chelsea)
    assert CAT_CLASSES & set(top3), [mobilenet[1].meta["categories"][i] for i in top3]


def test_real_mobilenet_sees_espresso_in_coffee(mobilenet, coffee):
    top3 = _top3(mobilenet, coffee)
    assert ESPRESSO in top3, [mobilenet[1].meta["categories"][i] for i in top3]
    assert mobilenet[1].meta["categories"][ESPRESSO] == "espresso"
