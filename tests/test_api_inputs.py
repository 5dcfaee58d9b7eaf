"""Bad input through the public API: every file, text and value a student (or a script) can send.

Each case goes to the launched lab through gradio_client (or bare HTTP), checks the sentence the
user gets back — a clear one, no traceback — and that the lab still answers GET / in time.
Engine-level intake is tested in test_images.py; this is the path through Gradio and the tabs.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from lab_api import (
    NOT_IMAGES,
    PHOTO_ENDPOINTS,
    animated_gif,
    assert_alive,
    encode,
    endpoints,
    exif_rotated_jpeg,
    image_file,
    mode_images,
    multipage_tiff,
    noise_png,
    outcome,
    peak_rss_during,
    photo_endpoints,
    png_claiming,
    predict,
    refusal,
    solid,
)

MB = 2**20
IDENTITY = "0 0 0\n0 1 0\n0 0 0"


@pytest.fixture(scope="module")
def api(lab_app):
    """The launched lab (shared by the session) and its photo endpoints."""
    missing = sorted(set(PHOTO_ENDPOINTS) - set(endpoints(lab_app.client)))
    assert not missing, f"endpoints the issues name are not served: {missing}"
    return lab_app


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    """Write bytes to a file with a given name; returns its path."""
    folder = tmp_path_factory.mktemp("uploads")

    def write(name: str, data: bytes):
        path = folder / name
        path.write_bytes(data)
        return path

    return write


def identity(api, photo) -> np.ndarray:
    """The photo as the lab sees it: the Convolution tab's identity kernel gives it back."""
    result = predict(
        api.client,
        "/apply_kernel",
        photo,
        kernel=IDENTITY,
        mode="clip",
        grayscale=False,
        flip=False,
        normalise=False,
        stride=1,
    )
    return np.asarray(image_file(result[0]), dtype=int)


def close(pixel, colour, tolerance=10) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - colour) <= tolerance))


# ---------------------------------------------------------------------------------------------
# Images: refused with one sentence by every tab


def _truncated_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    from PIL import Image

    data = encode(Image.fromarray(pixels), "JPEG", quality=90)
    return data[: len(data) // 2]


REFUSED = {
    "zero-byte file": ("empty.png", b"", r"empty"),
    "truncated JPEG": ("cut.jpg", _truncated_jpeg(), r"damaged|cut short"),
    "text renamed .png": ("notes.png", b"just some words, not a picture\n", r"not an image"),
    "PNG claiming 50000x50000": ("bomb.png", png_claiming(50000, 50000), r"too large"),
    **{
        f"{kind} renamed .png": (f"{kind.lower()}.png", data, r"not an image")
        for kind, (_, data) in NOT_IMAGES.items()
    },
}


# Every tab decodes the photo through the lab's intake: two cases prove it for each tab, the
# rest go through one light and one model tab.
EVERY_TAB = ("text renamed .png", "PNG claiming 50000x50000")


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_files_are_refused_with_a_sentence(api, upload, case):
    name, data, expected = REFUSED[case]
    path = upload(name, data)
    tabs = photo_endpoints(api.client) if case in EVERY_TAB else ["/apply_kernel", "/classify"]
    for api_name in tabs:
        message = refusal(api.client, api.url, api_name, path)
        assert re.search(expected, message), f"{api_name}: {message!r}"
        assert re.search("PNG|JPEG|smaller|photo", message), f"{api_name}: says what to do"


@pytest.mark.parametrize("kind", list(NOT_IMAGES))
def test_other_formats_are_refused_by_their_extension(api, upload, kind):
    """SVG, PDF, EPS, FITS, PSD under their own names: the photo input's file types refuse them
    (Gradio's own sentence lists the formats the lab takes)."""
    name, data = NOT_IMAGES[kind]
    path = upload(name, data)
    for api_name in ("/apply_kernel", "/classify", "/answer"):
        message = refusal(api.client, api.url, api_name, path)
        assert ".png" in message and ".jpg" in message, message


def test_a_decompression_bomb_leaves_memory_flat(api, upload):
    bomb = upload("claims-50000x50000.png", png_claiming(50000, 50000))
    for api_name in ("/classify", "/apply_kernel"):
        result, before, peak = peak_rss_during(
            lambda name=api_name: refusal(api.client, api.url, name, bomb)
        )
        assert isinstance(result, str) and "too large" in result
        assert peak - before < 50 * MB, f"{api_name}: RSS rose {(peak - before) / MB:.0f} MB"


@pytest.mark.parametrize("size", [(1, 1), (10000, 1)], ids=["1x1", "10000x1"])
def test_tiny_and_thin_images_work_or_are_explained_everywhere(api, upload, size):
    path = upload(f"strip-{size[0]}x{size[1]}.png", encode(solid((200, 30, 30), size), "PNG"))
    served = []
    for api_name in photo_endpoints(api.client):
        answer, before, peak = peak_rss_during(
            lambda name=api_name: outcome(api.client, api.url, name, path)
        )
        if isinstance(answer, BaseException):
            raise answer
        _, message = answer
        assert peak - before < 300 * MB, f"{api_name}: RSS rose {(peak - before) / MB:.0f} MB"
        if message is None:
            served.append(api_name)
    assert "/apply_kernel" in served and "/classify" in served


# ---------------------------------------------------------------------------------------------
# Images: accepted and repaired the way a person expects


@pytest.mark.parametrize("mode", list(mode_images()))
def test_every_pixel_mode_reaches_the_tabs_as_rgb(api, upload, mode):
    data, colour = mode_images()[mode]
    path = upload(
        f"mode-{mode.replace(' ', '-').replace(';', '')}.{'tif' if mode == 'CMYK' else 'png'}", data
    )
    pixels = identity(api, path)
    assert pixels.shape == (30, 40, 3)
    assert close(pixels[15, 20], colour), f"{mode}: the lab sees {pixels[15, 20]}, not {colour}"
    result, message = outcome(api.client, api.url, "/classify", path)
    assert message is None and result["confidences"], message


@pytest.mark.parametrize("kind", ["animated GIF", "multi-page TIFF"])
def test_only_the_first_frame_is_used(api, upload, kind):
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    if kind == "animated GIF":
        path = upload("blink.gif", animated_gif(colours))
    else:
        path = upload("pages.tiff", multipage_tiff(colours))
    pixels = identity(api, path)
    assert close(pixels[10, 10], (255, 0, 0), tolerance=40), pixels[10, 10]
    assert predict(api.client, "/classify", path)["confidences"]


def test_exif_orientation_matches_what_the_browser_shows(api, upload):
    """Stored 60×30 with orientation 6: a browser shows it 30 wide, 60 tall, red on top."""
    path = upload("phone.jpg", exif_rotated_jpeg())
    pixels = identity(api, path)
    assert pixels.shape[:2] == (60, 30)
    assert close(pixels[10, 15], (255, 0, 0), tolerance=40), pixels[10, 15]
    assert close(pixels[50, 15], (0, 0, 255), tolerance=40), pixels[50, 15]


def test_a_missing_photo_is_explained(api):
    for api_name in photo_endpoints(api.client):
        name = next(
            p["parameter_name"]
            for p in endpoints(api.client)[api_name]["parameters"]
            if p.get("component") == "File"
        )
        message = refusal(api.client, api.url, api_name, None, **{name: None})
        assert "photo" in message.lower(), message


# ---------------------------------------------------------------------------------------------
# Text: labels, questions, prompts


def _zero_shot(api, photo, labels: str, **values):
    return outcome(api.client, api.url, "/zero_shot", photo, labels=labels, **values)


@pytest.fixture(scope="module")
def photo(upload):
    return upload("noise.png", noise_png(7))


@pytest.mark.parametrize(
    "labels, expected",
    [
        ("", r"at least one"),
        (" , ,\n,\n  ", r"at least one"),
        ("\n".join(f"thing {i}" for i in range(10_000)), r"at most \d+"),
    ],
    ids=["empty", "separators only", "10,000 labels"],
)
def test_bad_label_lists_are_refused(api, photo, labels, expected):
    result, message = _zero_shot(api, photo, labels)
    assert message is not None and re.search(expected, message), (message, result)


def test_label_lists_are_cleaned(api, photo):
    result, message = _zero_shot(api, photo, "cat, Cat,cat \n dog\x00gy, 🐱 kitten")
    assert message is None, message
    labels = [row["label"] for row in result[0]["confidences"]]
    assert sorted(labels) == sorted(["cat", "doggy", "🐱 kitten"]), labels  # NUL gone, no dupes


def test_a_5000_character_label_is_handled(api, photo):
    result, message = _zero_shot(api, photo, "cat\n" + "a very long label " * 278)
    if message is None:
        assert len(result[0]["confidences"]) == 2
    else:
        assert "long" in message or "characters" in message, message


def test_similarity_texts_are_checked(api, photo):
    for texts, expected in (("", r"at least one"), ("\n".join(map(str, range(1000))), r"at most")):
        result, message = outcome(api.client, api.url, "/similarity", photo, texts=texts)
        assert message is not None and re.search(expected, message), (message, result)
    result, message = outcome(api.client, api.url, "/similarity", photo, texts="🐱\x00 cat\n☕")
    assert message is None, message


@pytest.mark.parametrize(
    "question",
    ["", "x" * 100_000, "what\x00 is this?", "🐱❓", "\n".join(["why?"] * 50)],
    ids=["empty", "100,000 characters", "NUL", "emoji", "50 questions"],
)
def test_questions_sent_straight_to_the_api(api, photo, question):
    result, message = outcome(api.client, api.url, "/answer", photo, questions=question)
    if message is None:
        rows = result[0]["data"]
        assert rows and all("\x00" not in str(cell) for row in rows for cell in row)
        assert all(len(str(row[0])) <= 1000 for row in rows)  # no 100 kB question echoed back
    elif question == "":
        assert "question" in message.lower(), message


@pytest.mark.parametrize(
    "prefix", ["x" * 100_000, "a photo\x00 of", "🐱"], ids=["100,000 characters", "NUL", "emoji"]
)
def test_caption_prefixes(api, photo, prefix):
    result, message = outcome(api.client, api.url, "/caption", photo, prompt=prefix, max_new_tokens=5)
    if message is None:
        assert isinstance(result[0], str) and "\x00" not in result[0]


# ---------------------------------------------------------------------------------------------
# Kernels typed as text


KERNELS = {
    "nan": ("1 0 0\n0 nan 0\n0 0 1", r"number|finite|nan", False),
    "inf": ("1 0 0\n0 inf 0\n0 0 1", r"number|finite|inf", False),
    "1e309": ("1 0 0\n0 1e309 0\n0 0 1", r"number|finite|large|big", False),
    "python": ("__import__('os').system('id')", r"number", False),
    "ragged rows": ("1 2 3\n4 5\n6 7 8", r"row|same|square", False),
    "even size": ("1 1\n1 1", r"odd", False),
    "101x101": (
        "\n".join(" ".join(["1"] * 101) for _ in range(101)),
        r"15|too (big|large)|at most",
        False,
    ),
    "empty": ("", r"kernel|number", False),
    "15x15 on a 4x4 photo": ("\n".join(" ".join(["1"] * 15) for _ in range(15)), None, True),
}


@pytest.mark.parametrize("case", list(KERNELS))
def test_kernels_typed_as_text(api, upload, case):
    text, expected, may_work = KERNELS[case]
    small = upload("small.png", encode(solid((90, 90, 90), (4, 4)), "PNG"))
    for api_name, field in (("/apply_kernel", "kernel"), ("/robustness", "kernel_text")):
        if api_name not in endpoints(api.client):
            continue
        if api_name == "/apply_kernel":
            variants = [{"padding": "reflect"}, {"padding": "valid"}]
        else:  # the CLIP probe uses the kernel for its "your kernel" column
            variants = [{"distortions": ["original", "kernel"]}]
        for extra in variants:
            _, message = outcome(api.client, api.url, api_name, small, **{field: text}, **extra)
            if message is None:
                assert may_work, f"{api_name} accepted {case!r}"
            elif expected:
                assert re.search(expected, message, re.IGNORECASE), (api_name, message)


@pytest.mark.parametrize(
    "field, text",
    [
        ("filters", "nan nan nan\nnan nan nan\nnan nan nan"),
        ("filters", "__import__('os')"),
        ("filters", "\n\n".join(["1 0\n0 1"] * 3)),
        ("bias", "1e309 0 0 0"),
        ("bias", "1 2"),
    ],
)
def test_conv_layer_text(api, photo, field, text):
    message = refusal(api.client, api.url, "/conv_layer", photo, **{field: text})
    assert len(message) > 10


# ---------------------------------------------------------------------------------------------
# Dropdowns, sliders and numbers outside their range, sent straight to the API


def _bad_values(parameter: dict) -> list:
    kind = parameter.get("component")
    schema = parameter.get("type", {})
    if kind in ("Dropdown", "Radio"):
        return ["no such choice"]
    if kind == "Checkboxgroup":
        return [["no such choice"]]
    if kind == "Slider":
        bounds = re.findall(r"-?\d+(?:\.\d+)?", schema.get("description", ""))
        low, high = (float(b) for b in bounds[:2]) if len(bounds) >= 2 else (0.0, 1.0)
        return [high + 1000, low - 1000]
    if kind == "Number":
        return [10**9, -(10**9)]
    return []


def test_out_of_range_values_get_a_clear_sentence(api, photo):
    """Every dropdown, radio, checkbox group, slider and number of every public endpoint, sent a
    value the browser would never send: refused with a sentence, or safely clamped."""
    checked = 0
    for api_name, info in endpoints(api.client).items():
        for parameter in info["parameters"]:
            for value in _bad_values(parameter):
                name = parameter["parameter_name"]
                kwargs = {name: value}
                result, message = outcome(api.client, api.url, api_name, photo, **kwargs)
                checked += 1
                if message is None:
                    assert result is not None, (api_name, name, value)
    assert checked > 20
    assert_alive(api.url)


def test_wrongly_typed_values_leave_the_lab_running(api, photo):
    """A string for a slider, None for a number: Gradio refuses these before the lab sees them,
    with its generic message (show_error is off); no traceback, and the next call works."""
    from gradio_client.exceptions import AppError

    for api_name, info in endpoints(api.client).items():
        for parameter in info["parameters"]:
            if parameter.get("component") not in ("Slider", "Number"):
                continue
            try:
                predict(api.client, api_name, photo, **{parameter["parameter_name"]: "abc"})
            except AppError as error:
                assert "Traceback" not in str(error)
    assert_alive(api.url)
    assert predict(api.client, "/apply_kernel", photo)[0]
