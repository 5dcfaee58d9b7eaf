"""The lecture's two figures of published numbers, for the slides with no live model behind them:
ViT against BiT ResNets by pre-training data (Dosovitskiy et al., ICLR 2021, Fig. 3 / Table 5),
and LAION-5B's make-up (Schuhmann et al., NeurIPS 2022 Datasets and Benchmarks)."""

from __future__ import annotations

from matplotlib.figure import Figure

# ImageNet top-1 (%) after pre-training on each data set and fine-tuning at 384 px: ViT from
# Dosovitskiy et al. 2021, Table 5 (the values of its Fig. 3); BiT ResNet-152x4 from Kolesnikov
# et al. 2020 (BiT-S, BiT-M, BiT-L). None: not trained in the paper.
PRETRAINING = ("ImageNet\n(1.3M)", "ImageNet-21k\n(14M)", "JFT-300M\n(303M)")
VIT_ACCURACY = {
    "ViT-B/32": (73.38, 81.28, 80.73),
    "ViT-L/16": (76.53, 85.15, 87.12),
    "ViT-H/14": (None, 85.13, 88.04),
}
BIT_ACCURACY = ("BiT ResNet-152x4", (81.30, 85.39, 87.54))
VIT_CAPTION = (
    "ImageNet top-1 after pre-training on ImageNet, ImageNet-21k or JFT-300M. Sources: "
    "Dosovitskiy et al., 'An Image is Worth 16x16 Words', ICLR 2021 (Fig. 3, Table 5); "
    "Kolesnikov et al., 'Big Transfer (BiT)', ECCV 2020."
)

# LAION-5B (Schuhmann et al. 2022): pairs kept when CLIP ViT-B/32's image–text cosine similarity
# passed the threshold (0.28 for English, 0.26 for the rest).
LAION_PARTS = (
    ("English (LAION-2B-en)", 2.32),
    ("other languages (LAION-2B-multi)", 2.26),
    ("no detected language (LAION-1B-nolang)", 1.27),
)
LAION_TOTAL = 5.85
LAION_THRESHOLDS = {"English": 0.28, "other": 0.26}
LAION_CAPTION = (
    "LAION-5B: 5.85 billion image–text pairs from Common Crawl, kept when CLIP ViT-B/32 found "
    "image and text similar (cosine ≥ 0.28 for English, ≥ 0.26 otherwise). Source: Schuhmann "
    "et al., 'LAION-5B', NeurIPS 2022 Datasets and Benchmarks."
)


def draw_vit_data(*, scale: float = 1.0) -> Figure:
    """ViT vs BiT by pre-training data size: the slide 'ViTs outperform ResNets with larger
    datasets'. `scale` multiplies every text size (the projector view passes more than 1)."""
    figure = Figure(figsize=(6.4, 3.8), facecolor="white")
    axes = figure.add_subplot()
    xs = range(len(PRETRAINING))
    name, values = BIT_ACCURACY
    axes.plot(xs, values, color="0.45", linewidth=6, alpha=0.5, label=name)
    for (model, accuracy), marker in zip(VIT_ACCURACY.items(), "os^", strict=True):
        points = [(x, y) for x, y in zip(xs, accuracy, strict=True) if y is not None]
        axes.plot(*zip(*points, strict=True), marker=marker, linewidth=2, label=model)
    axes.set_xticks(list(xs), PRETRAINING, fontsize=9 * scale)
    axes.set_ylabel("ImageNet top-1 (%)", fontsize=10 * scale, color="black")
    axes.set_title("Pre-training data size", fontsize=11 * scale, color="black")
    axes.set_facecolor("white")
    axes.tick_params(labelsize=9 * scale, colors="black")
    axes.set_ylim(70, 90)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8 * scale, loc="lower right")
    figure.tight_layout()
    return figure


def draw_laion(*, scale: float = 1.0) -> Figure:
    """LAION-5B's 5.85 billion pairs by language, with the CLIP filter's thresholds."""
    figure = Figure(figsize=(6.4, 2.6), facecolor="white")
    axes = figure.add_subplot()
    names = [name for name, _ in LAION_PARTS]
    sizes = [size for _, size in LAION_PARTS]
    bars = axes.barh(names[::-1], sizes[::-1], color=["#7f7f7f", "#ff7f0e", "#1f77b4"])
    for bar, size in zip(bars, sizes[::-1], strict=True):
        axes.text(bar.get_width() + 0.03, bar.get_y() + bar.get_height() / 2, f"{size:.2f} B",
                  va="center", fontsize=9 * scale, color="black")
    axes.set_xlim(0, 2.9)
    axes.set_xlabel("billion image–text pairs", fontsize=10 * scale, color="black")
    axes.set_title(
        f"LAION-5B: {LAION_TOTAL} billion pairs, filtered by CLIP similarity\n"
        f"(≥ {LAION_THRESHOLDS['English']} English, ≥ {LAION_THRESHOLDS['other']} other)",
        fontsize=10 * scale, color="black",
    )
    axes.set_facecolor("white")
    axes.tick_params(labelsize=9 * scale, colors="black")
    figure.tight_layout()
    return figure


FIGURES = {"vit_data": (draw_vit_data, VIT_CAPTION), "laion": (draw_laion, LAION_CAPTION)}
# What each figure is called when a lecturer keeps it (vlmlab.export: PNG at 2×, SVG)
FILE_NAMES = {"vit_data": "lecture_vit-vs-bit_pretraining-data", "laion": "lecture_laion-5b_pairs"}


def kept_figure(name: str, shown) -> tuple:
    """The step figure `name` as shown (`shown`: its picture) for `export.save_view_figures`:
    named by FILE_NAMES, its caption the published sources."""
    return (shown, FIGURES[name][1], [], FILE_NAMES[name])
