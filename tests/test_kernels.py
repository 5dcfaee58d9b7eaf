"""The kernel engine against independent references (numpy padding + scipy.ndimage.correlate),
the lecture's worked example, every bad input's sentence, the renderers and the widgets. The
Convolution tab's handlers and endpoints: tests/test_convolution_tab.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from vlmlab.kernels import (
    LECTURE_INPUT,
    LECTURE_KERNEL,
    PADDINGS,
    PRESETS,
    KernelError,
    apply_kernel,
    cells_to_array,
    explain_output_size,
    format_kernel,
    normalise_kernel,
    output_size,
    parse_kernel,
    resize_kernel,
)
from vlmlab.kernels.layer import LAYER_PRESET, apply_conv_layer, format_filters, parse_filters
from vlmlab.kernels.render import display_result, render_kernel, render_step, signed_map
from vlmlab.kernels.step import explain_pixel

NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "zero": "constant", "valid": "constant"}
LUMA = np.array([0.299, 0.587, 0.114])


def reference(image: np.ndarray, kernel: np.ndarray, padding: str, stride: int, flip: bool):
    """out[i, j] = Σ_uv K[u, v] · padded[i·s + u, j·s + v], built from np.pad and scipy."""
    k = kernel.shape[-1]
    weights = kernel[..., ::-1, ::-1] if flip else kernel
    p = 0 if padding == "valid" else k // 2
    planes = image[..., None] if image.ndim == 2 else image
    out = []
    for c in range(planes.shape[2]):
        w = weights[c] if weights.ndim == 3 else weights
        padded = np.pad(planes[..., c].astype(np.float64), p, mode=NUMPY_PAD[padding])
        full = ndi.correlate(padded, w, mode="constant")  # centred on each padded pixel
        h = k // 2  # keep centres whose window lies inside the padded image, every s-th
        out.append(full[h : padded.shape[0] - h : stride, h : padded.shape[1] - h : stride])
    result = np.stack(out, axis=-1)
    return result[..., 0] if image.ndim == 2 else result


def assert_close(actual, expected, kernel):
    scale = 255 * float(np.abs(kernel).sum()) + 1
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=2e-6 * scale, rtol=0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.chelsea()[120:161, 180:237])  # 41×57 crop: odd sizes


# ---------------------------------------------------------------------------------------------
# apply_kernel against the reference


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_padding_stride_gray_and_flip_match_the_reference(photo, name):
    kernel = PRESETS[name]
    for padding, stride, grayscale, flip in itertools.product(PADDINGS, (1, 2, 3), (0, 1), (0, 1)):
        out = apply_kernel(
            photo,
            kernel,
            padding=padding,
            stride=stride,
            grayscale=bool(grayscale),
            flip=bool(flip),
        )
        source = photo.astype(np.float64) @ LUMA if grayscale else photo
        assert_close(out, reference(source, kernel, padding, stride, bool(flip)), kernel)


@pytest.mark.parametrize("size", [1, 7, 15])
def test_random_kernels_of_every_size_and_a_pil_image(photo, size):
    kernel = np.random.default_rng(size).normal(size=(size, size))
    for padding, stride in itertools.product(PADDINGS, (1, 4)):
        out = apply_kernel(Image.fromarray(photo), kernel, padding=padding, stride=stride)
        assert_close(out, reference(photo, kernel, padding, stride, False), kernel)


def test_three_channel_kernel_filters_each_channel_with_its_own_block(photo):
    kernel = np.stack([PRESETS["Sobel left"], PRESETS["box blur"], PRESETS["emboss"]])
    for padding, flip in itertools.product(PADDINGS, (False, True)):
        out = apply_kernel(photo, kernel, padding=padding, stride=2, flip=flip)
        assert_close(out, reference(photo, kernel, padding, 2, flip), kernel)
        single = apply_kernel(photo[..., 1], kernel[1], padding=padding, stride=2, flip=flip)
        np.testing.assert_allclose(out[..., 1], single, atol=1e-4)


def test_a_matrix_is_used_as_it_is_without_clipping():
    matrix = np.array([[-500, 2, 3], [4, 1000, 6], [7, 8, 9.5]])
    out = apply_kernel(matrix, PRESETS["identity"], padding="zero")
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, matrix.astype(np.float32))


def test_output_size_follows_the_formula(photo):
    height, width = photo.shape[:2]
    for k, padding, stride in itertools.product((1, 3, 5, 15), PADDINGS, (1, 2, 3, 5)):
        p = 0 if padding == "valid" else k // 2
        expected = ((height + 2 * p - k) // stride + 1, (width + 2 * p - k) // stride + 1)
        assert output_size(height, width, k, padding, stride) == expected
        assert (
            apply_kernel(photo, np.ones((k, k)), padding=padding, stride=stride).shape[:2]
            == expected
        )
    text = explain_output_size(300, 451, 3, "zero", 2)
    assert "⌊(300 + 2·1 − 3) / 2⌋ + 1 = 150" in text and "300×451 in → 150×226 out" in text


# ---------------------------------------------------------------------------------------------
# The lecture's worked example, and correlation against convolution


def test_the_lecture_example_gives_the_slide_values_and_fills_in_the_question_marks():
    out = apply_kernel(LECTURE_INPUT, LECTURE_KERNEL, padding="valid")
    assert out.shape == (3, 3)
    np.testing.assert_array_equal(out[0], [11, 2, 15])  # on the slide
    np.testing.assert_array_equal(out[1], [13, 8, 12])  # on the slide
    # The slide's "?": the kernel adds the left and right neighbours in row 3: 3+1, 0+1, 1+1.
    np.testing.assert_array_equal(out[2], [4, 1, 2])


def test_correlation_and_convolution_differ_for_an_asymmetric_kernel():
    left = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0]])  # weight on the left cell
    correlation = apply_kernel(LECTURE_INPUT, left, padding="valid")
    convolution = apply_kernel(LECTURE_INPUT, left, padding="valid", flip=True)
    np.testing.assert_array_equal(correlation, LECTURE_INPUT[1:4, 0:3])  # reads left
    np.testing.assert_array_equal(convolution, LECTURE_INPUT[1:4, 2:5])  # flipped: reads right
    step = explain_pixel(LECTURE_INPUT, left, 0, 0, padding="valid")
    assert not step.symmetric
    assert step.sums[0] == 3 and step.other_sums[0] == 8
    symmetric = explain_pixel(LECTURE_INPUT, LECTURE_KERNEL, 2, 0, padding="valid")
    assert symmetric.symmetric and symmetric.sums[0] == symmetric.other_sums[0] == 4


@pytest.mark.parametrize("padding", PADDINGS)
def test_a_stepped_pixel_is_exactly_what_apply_kernel_computes(photo, padding):
    kernel = np.random.default_rng(3).normal(size=(5, 5))
    for stride, grayscale, flip in itertools.product((1, 3), (False, True), (False, True)):
        out = apply_kernel(
            photo, kernel, padding=padding, stride=stride, grayscale=grayscale, flip=flip
        )
        source = (photo.astype(np.float64) @ LUMA)[..., None] if grayscale else photo
        p = 0 if padding == "valid" else 2
        padded = np.stack(
            [
                np.pad(source[..., c].astype(np.float64), p, mode=NUMPY_PAD[padding])
                for c in range(source.shape[2])
            ]
        )
        for row, col in [(0, 0), (out.shape[0] - 1, out.shape[1] - 1), (3, 1)]:
            step = explain_pixel(
                photo,
                kernel,
                row,
                col,
                padding=padding,
                stride=stride,
                grayscale=grayscale,
                flip=flip,
            )
            window = padded[:, row * stride : row * stride + 5, col * stride : col * stride + 5]
            np.testing.assert_allclose(step.window, window, atol=1e-3)
            np.testing.assert_allclose(
                step.sums, np.atleast_1d(out[row, col]), rtol=1e-4, atol=1e-2
            )
            assert step.inside.all() == (
                padding == "valid"
                or (
                    step.top >= 0
                    and step.left >= 0
                    and step.top + 5 <= photo.shape[0]
                    and step.left + 5 <= photo.shape[1]
                )
            )


def test_render_step_checks_the_hand_sum_against_apply_kernel():
    step, html = render_step(LECTURE_INPUT, LECTURE_KERNEL, 99, -5, padding="valid")
    assert (step.row, step.col) == (2, 0)  # moved inside the 3×3 output
    assert "sum = <b>4</b>" in html and "apply_kernel: 4" in html
    assert "equals its 180° rotation" in html
    _, html = render_step(LECTURE_INPUT, PRESETS["Sobel left"], 0, 0, padding="zero")
    assert "class='pad'" in html and "would give" in html


# ---------------------------------------------------------------------------------------------
# Kernel text


@pytest.mark.parametrize(
    "text",
    [
        "1 0 -1\n2 0 -2\n1 0 -1",
        "1, 0, -1\n2, 0, -2\n1, 0, -1",
        "1; 0; -1\n 2;0;-2 \n1 ,0 ,-1\n",
        "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]",
        "array([[ 1.,  0., -1.],\n       [ 2.,  0., -2.],\n       [ 1.,  0., -1.]])",
        "tensor([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=torch.float32)",
        "[[ 1  0 -1]\n [ 2  0 -2]\n [ 1  0 -1]]",
        "1 0 −1\n2 0 −2\n1 0 −1",  # minus signs pasted from a slide
        "2/2 0 -4/4\n2 0 -2\n1 0 -1e0",
    ],
)
def test_parse_kernel_reads_what_people_paste(text):
    np.testing.assert_array_equal(parse_kernel(text), PRESETS["Sobel left"])


def test_multi_channel_kernels_and_the_format_round_trip():
    kernel = parse_kernel("1 0 0\n0 1 0\n0 0 1\n\n0 0 0\n0 1 0\n0 0 0\n\n\n1 1 1\n1 1 1\n1 1 1")
    assert kernel.shape == (3, 3, 3)
    nested = parse_kernel(str(kernel.tolist()))
    np.testing.assert_array_equal(nested, kernel)
    for preset in PRESETS.values():
        np.testing.assert_allclose(parse_kernel(format_kernel(preset)), preset, rtol=1e-5)
    learned = np.random.default_rng(0).normal(scale=0.05, size=(3, 7, 7))
    text = format_kernel(learned)
    assert text.count("\n\n") == 2 and "e" not in text.replace("e-0", "")
    np.testing.assert_allclose(parse_kernel(text), learned, rtol=1e-5, atol=1e-7)
    assert format_kernel(np.array([[0.0, -0.0, 1.0]] * 3)[:, :3]).split()[:3] == ["0", "0", "1"]
    np.testing.assert_allclose(parse_filters(format_filters(LAYER_PRESET)), LAYER_PRESET, atol=1e-6)


BAD_KERNELS = [
    ("", "empty"),
    ("  \n \n", "empty"),
    ("1 x 1\n1 1 1\n1 1 1", "row 1, column 2, 'x', is not a number"),
    ("1 1 1\n1 nan 1\n1 1 1", "nan; kernel values must be ordinary finite numbers"),
    ("inf 1 1\n1 1 1\n1 1 1", "inf; kernel values must be ordinary finite numbers"),
    ("1 1 1\n1 1 1\n1 1 -Infinity", "-Infinity"),
    ("1e309 0 0\n0 0 0\n0 0 0", "too large"),
    ("2000000 0 0\n0 0 0\n0 0 0", "between -1,000,000 and 1,000,000"),
    ("1 1 1\n1 1\n1 1 1", "row 1 has 3 and row 2 has 2"),
    ("1 1\n1 1", "square with an odd size, like 3×3 or 5×5; this one is 2×2"),
    ("1 2 3 4 5\n1 2 3 4 5\n1 2 3 4 5", "this one is 3×5"),
    ("\n".join([" ".join(["1"] * 101)] * 101), "101×101; the largest the lab takes is 15×15"),
    ("1 0 0\n0 1 0\n0 0 1\n\n1 1 1 1 1\n", "odd size, like 3×3 or 5×5; channel 2 is 1×5"),
    ("1 0 0\n0 1 0\n0 0 1\n\n1", "channel 1 is 3×3, channel 2 is 1×1"),
    ("[[1, 2, 3], [4, 5, 6]", "never closed"),
    ("__import__('os').system('true')", "is not a number"),
    ("1/0 0 0\n0 0 0\n0 0 0", "divides by zero"),
]


@pytest.mark.parametrize("text, message", BAD_KERNELS)
def test_bad_kernels_get_one_clear_sentence(text, message):
    with pytest.raises(KernelError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_kernel(text)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_bad_sizes_strides_paddings_and_normalising():
    with pytest.raises(KernelError, match="larger than the image .5×5.; choose a smaller kernel"):
        apply_kernel(LECTURE_INPUT, np.ones((7, 7)), padding="valid")
    assert apply_kernel(LECTURE_INPUT, np.ones((7, 7)), padding="zero").shape == (5, 5)
    for stride in (0, -1, 1.5, True, "2", float("nan")):
        with pytest.raises(KernelError, match="stride must be a whole number of at least 1"):
            apply_kernel(LECTURE_INPUT, LECTURE_KERNEL, stride=stride)
    assert apply_kernel(LECTURE_INPUT, LECTURE_KERNEL, stride=2.0).shape == (3, 3)
    with pytest.raises(KernelError, match="padding must be one of reflect, replicate, zero"):
        apply_kernel(LECTURE_INPUT, LECTURE_KERNEL, padding="circular")
    with pytest.raises(KernelError, match="all-zero kernel cannot be normalised"):
        normalise_kernel(np.zeros((3, 3)))
    with pytest.raises(KernelError, match="needs a colour image"):
        apply_kernel(LECTURE_INPUT, np.ones((3, 3, 3)))
    with pytest.raises(KernelError, match="kernel has 2 channels but the image has 3"):
        apply_kernel(np.zeros((8, 8, 3), np.uint8), np.ones((2, 3, 3)))
    with pytest.raises(KernelError, match="NaN or infinity"):
        apply_kernel(LECTURE_INPUT, np.full((3, 3), np.nan))
    with pytest.raises(KernelError, match="grid is empty"):
        cells_to_array([["", ""], ["", ""]])
    with pytest.raises(KernelError, match="Row 2, column 1 of the kernel grid is empty"):
        cells_to_array([["1", "0", "1"], ["", "1", "1"], ["1", "1", "1"]])


def test_normalise_and_resize():
    np.testing.assert_allclose(normalise_kernel(np.ones((3, 3))), PRESETS["box blur"])
    np.testing.assert_array_equal(
        normalise_kernel(PRESETS["outline (Laplacian)"]), PRESETS["outline (Laplacian)"]
    )  # sums to 0: left as it is
    for kernel in PRESETS.values():
        normalised = normalise_kernel(kernel)
        assert abs(normalised.sum() - 1) < 1e-9 or abs(kernel.sum()) < 1e-9
    grown = resize_kernel(PRESETS["sharpen"], 7)
    assert grown.shape == (7, 7) and grown[3, 3] == 5 and np.abs(grown).sum() == 9
    np.testing.assert_array_equal(resize_kernel(grown, 3), PRESETS["sharpen"])


# ---------------------------------------------------------------------------------------------
# Display, the layer


def test_display_modes():
    values = np.array([[-300.0, -10.0, 0.0, 100.0, 400.0]], np.float32)
    assert display_result(values, "clip").tolist() == [[0, 0, 0, 100, 255]]
    assert display_result(values, "abs").tolist() == [[255, 10, 0, 100, 255]]
    stretched = display_result(values, "minmax")[0]
    assert stretched[0] == 0 and stretched[-1] == 255 and np.all(np.diff(stretched.astype(int)) > 0)
    signed = display_result(values, "signed")[0].astype(int)  # (5, 3) RGB
    assert signed[0, 2] > signed[0, 0] and signed[-1, 0] > signed[-1, 2]  # blue < 0 < red
    assert abs(signed[2] - 250).max() < 16  # 0 is (nearly) white
    colour = display_result(np.stack([values] * 3, axis=-1), "signed")
    assert colour.shape == (1, 5, 3)
    with pytest.raises(KernelError, match="display mode"):
        display_result(values, "log")
    assert signed_map(np.zeros((2, 2))).shape == (2, 2, 3)


def test_render_kernel_draws_photos_and_matrices(photo):
    view = render_kernel(photo, PRESETS["Sobel left"], mode="minmax", stride=2)
    assert view.image.size == (29, 21) and view.cell == 1
    assert "21×29 out" in view.arithmetic and "Raw output values" in view.arithmetic
    matrix = render_kernel(LECTURE_INPUT, LECTURE_KERNEL, padding="valid")
    assert matrix.cell > 1 and matrix.image.size == (3 * matrix.cell, 3 * matrix.cell)


def test_a_conv_layer_sums_its_channels_and_adds_the_bias(photo):
    bias = np.array([1.0, -2.0, 3.0, 0.5])
    maps = apply_conv_layer(photo, LAYER_PRESET, bias, padding="zero", stride=2)
    assert maps.shape == (4, 21, 29)
    for n in range(4):
        expected = (
            sum(reference(photo[..., c], LAYER_PRESET[n, c], "zero", 2, False) for c in range(3))
            + bias[n]
        )
        np.testing.assert_allclose(maps[n], expected, atol=1e-3)
    relu = apply_conv_layer(photo, LAYER_PRESET, bias, padding="zero", stride=2, relu=True)
    np.testing.assert_array_equal(relu, np.maximum(maps, 0))
    shared = apply_conv_layer(photo, PRESETS["Sobel left"][None], padding="valid")
    manual = sum(
        apply_kernel(photo[..., c], PRESETS["Sobel left"], padding="valid") for c in range(3)
    )
    np.testing.assert_allclose(shared[0], manual, atol=1e-3)
    with pytest.raises(KernelError, match="one finite bias per filter .4 numbers."):
        apply_conv_layer(photo, LAYER_PRESET, [1.0, 2.0])
    with pytest.raises(KernelError, match="The ReLU setting must be true or false"):
        apply_conv_layer(photo, LAYER_PRESET, relu="yes")
    with pytest.raises(KernelError, match="Filter 2: The kernel must be square"):
        parse_filters("1 0 0\n0 1 0\n0 0 1\n---\n1 1\n1 1")
    with pytest.raises(KernelError, match="same shape"):
        parse_filters("1 0 0\n0 1 0\n0 0 1\n---\n1")


# ---------------------------------------------------------------------------------------------
# The Jupyter face


def test_kernel_explorer_controls_change_the_output():
    from lab_api import png_pixels

    from vlmlab.kernels.layer import LAYER_PRESET_NAMES
    from vlmlab.kernels.render import draw_layer_maps
    from widgets.kernels import ConvLayerExplorer, KernelExplorer

    photo = np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)
    explorer = KernelExplorer(photo)
    explorer.preset.value = "Sobel left"
    assert explorer.text.value == format_kernel(PRESETS["Sobel left"])
    sobel = render_kernel(photo, PRESETS["Sobel left"], padding="reflect", stride=1)
    assert np.array_equal(png_pixels(explorer.result.value), png_pixels(sobel.image))
    explorer.mode.value = "signed"
    signed = render_kernel(photo, PRESETS["Sobel left"], padding="reflect", mode="signed")
    assert np.array_equal(png_pixels(explorer.result.value), png_pixels(signed.image))
    assert not np.array_equal(png_pixels(signed.image), png_pixels(sobel.image))
    explorer.stride.value = 2
    assert "20×25 out" in explorer.arithmetic.value
    explorer.grid.children[4].value = "x"
    assert "is not a number" in explorer.status.value
    explorer.grid.children[4].value = "3"
    assert parse_kernel(explorer.text.value)[1, 1] == 3 and explorer.preset.value == "custom"
    explorer.size.value = 5
    assert len(explorer.grid.children) == 25

    lecture = KernelExplorer(LECTURE_INPUT, LECTURE_KERNEL, padding="valid")
    lecture.row.value = 2
    assert "sum = <b>4</b>" in lecture.step.value and lecture.matrix_view.value

    photo = np.random.default_rng(1).integers(0, 255, (30, 30, 3), np.uint8)
    layer = ConvLayerExplorer(photo)
    filters = parse_filters(layer.filters.value)
    assert (apply_conv_layer(photo, filters, padding="reflect") < 0).any()  # ReLU has work to do
    layer.relu.value = True
    rectified = apply_conv_layer(photo, filters, padding="reflect", relu=True)
    assert (rectified >= 0).all()
    assert np.allclose(filters, LAYER_PRESET)  # the lecture's filters, so their maps are named
    drawn = draw_layer_maps(rectified, list(LAYER_PRESET_NAMES))
    assert np.array_equal(png_pixels(layer.maps.value), png_pixels(drawn))
    layer.bias.value = "1 2"
    assert "one finite bias per filter" in layer.shapes.value or "at most" in layer.shapes.value
