"""A full-size, random-weight, offline model world for the benchmarks.

Random weights cost exactly what real ones cost, so every default model id gets the full-size
architecture of its real checkpoint (built from the library's default config of the right class,
fixed where that differs from the real model), saved with `save_pretrained` and a working
processor into a Hugging Face cache under its real id; torchvision CNNs get a random state_dict
under the file name torchvision expects. The app's own loading code then runs unchanged — in
this process and in a launched `python app.py` that inherits the environment.

`activate()` must run before anything imports transformers or huggingface_hub.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = "vlmlab-bench-world-1"  # bump when what a model looks like here changes

CLIP_B32 = "openai/clip-vit-base-patch32"
VIT_B16 = "google/vit-base-patch16-224"
BLIP_BASE = "Salesforce/blip-image-captioning-base"
VILT = "dandelin/vilt-b32-finetuned-vqa"
HF_IDS = (CLIP_B32, VIT_B16, BLIP_BASE, VILT)
CNNS = ("alexnet", "resnet50")
DEFAULTS = (*CNNS, *HF_IDS)  # what the launched app serves in the benchmarks


def activate(folder: Path) -> dict[str, str]:
    """Point every cache at `folder` (HF_HOME, HF_HUB_CACHE, TORCH_HOME), offline; returns them."""
    for module in ("huggingface_hub", "transformers"):
        if module in sys.modules:
            raise RuntimeError(f"{module} was imported before the benchmark world was activated.")
    env = {
        "HF_HOME": str(folder / "hf_home"),
        "HF_HUB_CACHE": str(folder / "hf_home" / "hub"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # one table, no bars between its rows
        "TORCH_HOME": str(folder / "torch_home"),
        "VLMLAB_CACHE": str(folder / "vlmlab_cache"),  # feature visualisations: never the user's
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MPLBACKEND": "Agg",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for legacy in ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        os.environ.pop(legacy, None)
    os.environ.update(env)
    return env


def temporary_folder(keep: str | None) -> tuple[Path, bool]:
    """Where the world lives: `keep` (reused across runs) or a fresh temporary folder."""
    if keep:
        folder = Path(keep).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder, False
    return Path(tempfile.mkdtemp(prefix="vlmlab-bench-")), True


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def build(folder: Path, names: set[str], log=print) -> None:
    """Save each of `names` (HF ids and torchvision builder names) unless already there."""
    for name in sorted(names):
        stamp = folder / "stamps" / name.replace("/", "--")
        if stamp.exists() and stamp.read_text() == STAMP:
            continue
        start = time.perf_counter()
        if name in HF_IDS:
            _save_hf(folder / "hf_home", name)
        else:
            _save_cnn(folder / "torch_home", name)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(STAMP)
        log(f"  built {name} (random weights, full size) in {time.perf_counter() - start:.0f} s")


def seed_real_mobilenet(folder: Path) -> bool:
    """torchvision's real MobileNetV2 ImageNet weights, if the test package is installed."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import tiny_models

        tiny_models.seed_torch_home(folder / "torch_home")
        return True
    except (ImportError, FileNotFoundError):
        return False
    finally:
        sys.path.remove(str(ROOT / "tests"))


# ---------------------------------------------------------------------------------------------
# torchvision


def _save_cnn(torch_home: Path, name: str) -> None:
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    path = torch_home / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.get_model(
        name, weights=None, num_classes=len(weights.meta["categories"])
    )
    torch.save(model.state_dict(), path)


# ---------------------------------------------------------------------------------------------
# Hugging Face: the default config of each class is the base architecture; what differs is fixed


def _save_hf(hf_home: Path, model_id: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import tiny_models  # the tokenizer builders and the cache layout of the test world
    finally:
        sys.path.remove(str(ROOT / "tests"))
    import torch

    with (
        tempfile.TemporaryDirectory(dir=hf_home.parent) as staging,
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(0)
        out = Path(staging)
        {CLIP_B32: _save_clip, VIT_B16: _save_vit, BLIP_BASE: _save_blip, VILT: _save_vilt}[
            model_id
        ](out, tiny_models)
        tiny_models._place_in_cache(out, hf_home, model_id)


def _save_clip(out: Path, tiny) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny.make_clip_tokenizer()  # a small BPE; the encoder keeps CLIP's 49,408 rows
    ids = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config = CLIPConfig(text_config=ids)  # default = ViT-B/32 at 224², 12+12 layers, 512-d space
    assert (config.vision_config.patch_size, config.vision_config.hidden_size) == (32, 768)
    CLIPModel(config).eval().save_pretrained(out)
    processor = CLIPImageProcessor()  # shortest edge 224, centre crop 224, OpenAI mean/std
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    processor.save_pretrained(out)


def _save_vit(out: Path, tiny) -> None:
    from torchvision.models import ResNet50_Weights
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    classes = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]  # 1000 ImageNet labels
    config = ViTConfig(  # default = ViT-B/16 at 224²; the real one has a 1000-way head
        id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)}
    )
    assert (config.patch_size, config.image_size, config.num_hidden_layers) == (16, 224, 12)
    ViTForImageClassification(config).eval().save_pretrained(out)
    ViTImageProcessor().save_pretrained(out)  # 224×224, mean/std 0.5 as the real one


def _blip_tokenizer(tiny):
    """A BERT WordPiece tokenizer with BLIP's full vocabulary size: every generated id decodes."""
    from transformers import BertTokenizer

    vocab = tiny.bert_vocab(blip=False)
    for i in range(len(vocab), 30522):  # pad to bert-base-uncased's size; [DEC], [ENC] follow
        vocab[f"[unused{i}]"] = i
    vocab["[DEC]"] = len(vocab)
    vocab["[ENC]"] = len(vocab)
    return BertTokenizer(
        vocab=vocab, bos_token="[DEC]", extra_special_tokens=["[ENC]"], model_max_length=512
    )


def _save_blip(out: Path, tiny) -> None:
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = _blip_tokenizer(tiny)
    config = BlipConfig(  # default = BLIP base: ViT-B/16 at 384², 12-layer BERT decoder
        text_config={
            "bos_token_id": tokenizer.bos_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    )
    assert config.text_config.vocab_size == len(tokenizer) == 30524
    assert (config.vision_config.image_size, config.vision_config.num_hidden_layers) == (384, 12)
    BlipForConditionalGeneration(config).eval().save_pretrained(out)
    processor = BlipImageProcessor()  # 384×384
    BlipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    processor.save_pretrained(out)


def _save_vilt(out: Path, tiny) -> None:
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    tokenizer = tiny.make_bert_tokenizer(blip=False, model_max_length=40)
    answers = list(tiny.VILT_ANSWERS) + [f"answer {i}" for i in range(len(tiny.VILT_ANSWERS), 3129)]
    config = ViltConfig(  # default = ViLT-B/32, 384 shorter edge; the VQA head has 3,129 answers
        id2label=dict(enumerate(answers)), label2id={a: i for i, a in enumerate(answers)}
    )
    assert (config.patch_size, config.hidden_size, config.max_position_embeddings) == (32, 768, 40)
    ViltForQuestionAnswering(config).eval().save_pretrained(out)
    processor = ViltImageProcessor()  # shorter edge 384, longer ≤ 640, multiple of 32
    ViltProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    processor.save_pretrained(out)
