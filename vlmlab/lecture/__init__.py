"""The guided path through the lecture, in the slides' order: pixels → … → VQA. Each step
has a title, two or three sentences, and the view it opens (a link, `vlmlab.links`); the two
slides with no live model behind them carry a small cited figure of published numbers
(`vlmlab.lecture.render`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmlab.links import ViewState, decode


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # two or three sentences, plain text
    link: str  # the query string of the view this step opens (see vlmlab.links)
    figure: str | None = None  # "vit_data" or "laion": a figure of published numbers

    def view(self) -> ViewState:
        return decode(self.link, steps=len(STEPS))


OPENAI_CLIP = "openai/clip-vit-base-patch32"
LAION_CLIP = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"

STEPS: tuple[Step, ...] = (
    Step(
        "Pixels as a matrix",
        "A grayscale image is a matrix of whole numbers from 0 (black) to 255 (white). "
        "Pick a region of the photo and read its numbers.",
        "tab=pixels&sample=camera&top=120&left=200&size=10",
    ),
    Step(
        "Tensors and colour spaces",
        "A colour image is a C×H×W tensor: three planes, red, green and blue. The same colours "
        "can be written in other spaces, such as HSV, where hue, saturation and value are apart.",
        "tab=pixels&sample=coffee&size=8&space=HSV",
    ),
    Step(
        "Convolution and the worked example",
        "Each output pixel is a weighted sum of the window under the kernel. Open the worked "
        "5×5 ∗ 3×3 example below the result and step through one output pixel.",
        "tab=convolution&sample=chelsea&kernel=0%200%200%0A1%200%201%0A0%200%200&padding=zero",
    ),
    Step(
        "Kernels",
        "Different numbers, different effects: a Sobel kernel finds vertical edges, a box "
        "kernel blurs. Change one number and watch the result follow.",
        "tab=convolution&sample=camera&kernel=-1%200%201%0A-2%200%202%0A-1%200%201"
        "&grayscale=1&display=signed",
    ),
    Step(
        "A convolutional layer",
        "A layer holds many filters, each C×k×k, and gives one output map per filter. Open "
        "'A convolutional layer with several filters' and run it.",
        "tab=convolution&sample=astronaut",
    ),
    Step(
        "AlexNet's predictions",
        "A CNN turns the photo into probabilities over 1000 ImageNet classes. AlexNet (2012) "
        "started the deep-learning era with eight layers.",
        "tab=cnn&sample=chelsea&model=alexnet&top_k=5",
    ),
    Step(
        "Feature maps",
        "Each channel of a layer is one feature map: early layers answer to edges and colours, "
        "later ones to textures and parts. Click a tile to see one channel large.",
        "tab=cnn&sample=chelsea&model=alexnet&layer=conv2",
    ),
    Step(
        "The revolution of depth",
        "AlexNet had 8 layers, VGG 19, ResNet 152: deeper networks, fewer errors. Open 'The "
        "revolution of depth' to compare them on this photo.",
        "tab=cnn&sample=coffee",
    ),
    Step(
        "The cost of attention on pixels",
        "Self-attention compares every token with every other: on a 224×224 photo's pixels that "
        "is 50 176² pairs per layer. The table shows why ViTs cut the photo into patches.",
        "tab=vit&sample=chelsea",
    ),
    Step(
        "Patches: an image is worth 16×16 words",
        "The photo is cut into 16×16 patches; each is flattened and linearly projected into a "
        "token. Click a patch to follow it from pixels to vector.",
        "tab=vit&sample=chelsea",
    ),
    Step(
        "Position embeddings",
        "Attention alone does not know where a patch came from, so each token gets a learned "
        "position embedding added to it before the Transformer encoder. The position embeddings "
        "are learned with the rest of the model.",
        "tab=vit&sample=astronaut",
    ),
    Step(
        "Attention",
        "Each token looks at every other. The class token's attention in the last layer shows "
        "where the model looked to decide.",
        "tab=vit&sample=chelsea&query=CLS&head=mean",
    ),
    Step(
        "ViTs outperform ResNets with larger datasets",
        "Pre-trained on ImageNet alone, ViTs trail the BiT ResNets; with ImageNet-21k they draw "
        "level, and with JFT-300M the large ViTs pass them. The figure shows the published "
        "numbers.",
        "tab=vit&sample=chelsea",
        figure="vit_data",
    ),
    Step(
        "Contrastive pretraining",
        "CLIP learns from image–text pairs: matching pairs should score high, the rest of the "
        "batch low, so the N×N matrix turns diagonal. Train a tiny CLIP and watch it happen.",
        "tab=contrastive&steps=300&batch_size=64",
    ),
    Step(
        "Zero-shot classification",
        "A classifier built from label text alone: 'a photo of a {label}' for each label, and "
        "the photo goes to the closest text. No training on these labels was needed.",
        "tab=clip&sample=chelsea&labels=cat%0Adog%0Acar%0Acoffee",
    ),
    Step(
        "The similarity matrix",
        "Several images against several texts: the image–text similarity matrix of the "
        "lecture. Open 'Similarity matrix' and compare the sample photos with their captions.",
        "tab=clip&sample=coffee",
    ),
    Step(
        "Robustness",
        "CLIP keeps much of its accuracy on sketches and renditions where ImageNet models fall. "
        "Open 'Robustness' and distort the photo.",
        "tab=clip&sample=chelsea",
    ),
    Step(
        "LAION-5B",
        "LAION-5B is 5.85 billion image–text pairs from Common Crawl, kept when CLIP judged the "
        "image and its text similar enough. Whether training on such scraped images is lawful "
        "use of copyrighted work is an open legal question. Below, LAION's CLIP beside OpenAI's.",
        f"tab=clip&sample=chelsea&model={OPENAI_CLIP}&other_model={LAION_CLIP}",
        figure="laion",
    ),
    Step(
        "Captioning",
        "A captioning model writes a sentence about the photo, one word at a time, each word "
        "looking at the image patches through cross-attention. Try beam search or sampling and "
        "compare the sentences.",
        "tab=captioning&sample=coffee&decoding=greedy",
    ),
    Step(
        "Visual question answering",
        "Ask a question about the photo and get an answer. The maps show where the model looked "
        "to answer it.",
        "tab=vqa&sample=coffee&question=What%20is%20in%20the%20cup%3F",
    ),
)


def step_link(number: int) -> str:
    """The query string that opens lecture step `number` (1-based) with its view."""
    return f"{STEPS[number - 1].link}&step={number}"
