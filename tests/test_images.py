"""Image intake: every format, mode and broken file a student might upload."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from vlmlab.images import (
    MAX_FILE_BYTES,
    ImageError,
    WORKING_SIDE,
    load_image,
    read_image,
    sample_files,
    sample_images,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_allowed_formats_decode_to_rgb(fmt):
    source = Image.new("RGB", (30, 20), (200, 40, 10))
    image = load_image(encode(source, fmt))
    assert image.mode == "RGB" and image.size == (30, 20)
    r, g, b = np.asarray(image)[10, 15]
    assert r > 150 and g < 90 and b < 60  # still the same orange-red after the round trip


NOT_IMAGES = {
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "pdf": encode(Image.new("RGB", (8, 8)), "PDF"),
    "eps": encode(Image.new("RGB", (8, 8)), "EPS"),
    "fits": b"SIMPLE  =                    T".ljust(80)
    + b"BITPIX  =                    8".ljust(80)
    + b"NAXIS   =                    2".ljust(80)
    + b"NAXIS1  =                    4".ljust(80)
    + b"NAXIS2  =                    4".ljust(80)
    + b"END".ljust(80 * 31)
    + bytes(2880),
    "psd": b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 4, 4, 8, 3) + bytes(64),
    "text renamed .png": b"this is not a picture, just some words\n",
}


@pytest.mark.parametrize("name", list(NOT_IMAGES))
def test_other_formats_are_refused_with_the_allowed_list(name, tmp_path):
    path = tmp_path / "upload.png"
    path.write_bytes(NOT_IMAGES[name])
    with pytest.raises(ImageError, match="not an image the lab can read.*PNG, JPEG, WebP"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="The file is empty"):
        load_image(path)


def test_truncated_jpeg():
    data = encode(Image.effect_noise((200, 200), 40).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="damaged or cut short"):
        load_image(data[: len(data) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="could not be found"):
        load_image(tmp_path / "nope.png")


def test_file_over_the_size_limit(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ImageError, match=r"up to 50 MB"):
        load_image(path)


def test_decompression_bomb_is_refused_from_the_header():
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    tracemalloc.start()
    try:
        with pytest.raises(
            ImageError, match=r"too large \(2,500 megapixels\).*up to 64 megapixels"
        ):
            load_image(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # nothing near the 7.5 GB the header claims was allocated
    # Below Pillow's own bomb limit the lab reads the size from the header and names it.
    with pytest.raises(ImageError, match=r"too large \(9000×8000\)"):
        load_image(png_claiming(9_000, 8_000))


def test_large_photo_is_scaled_down_and_the_caller_is_told():
    big = Image.new("RGB", (WORKING_SIDE * 2, 1000), "navy")
    intake = read_image(encode(big, "PNG"))
    assert intake.image.size == (WORKING_SIDE, 500)
    assert any("scaled down from 4096×1000" in note for note in intake.notes)
    assert load_image(big).info["notes"] == intake.notes


def test_small_and_thin_images_pass_untouched():
    assert load_image(Image.new("RGB", (1, 1))).size == (1, 1)
    assert load_image(encode(Image.new("L", (10000, 1)), "PNG")).size == (WORKING_SIDE, 1)


def test_exif_orientation_is_applied():
    # Stored sideways: left half red. Orientation 6 means "rotate 90° clockwise to view".
    stored = Image.new("RGB", (40, 20), "blue")
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(stored, "JPEG", exif=exif, quality=95))
    assert image.size == (20, 40)  # upright, as a browser shows it
    pixels = np.asarray(image).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60  # the red half is on top
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60


def test_the_downscale_note_gives_the_size_of_the_upright_photo():
    # 400×100 as stored, 100×400 as seen (orientation 6): the note speaks of what the user sees.
    exif = Image.Exif()
    exif[0x0112] = 6
    intake = read_image(encode(Image.new("RGB", (400, 100), "gray"), "JPEG", exif=exif), max_side=80)
    assert intake.image.size == (20, 80)
    assert intake.notes == (
        "The photo was scaled down from 100×400 to 20×80 pixels to keep the lab fast.",
    )
    flat = read_image(encode(Image.new("RGB", (400, 100), "gray"), "JPEG"), max_side=80)
    assert flat.notes[0].startswith("The photo was scaled down from 400×100 to 80×20")


def test_animated_gif_gives_its_first_frame_and_says_so():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    intake = read_image(data)
    assert tuple(np.asarray(intake.image)[8, 8]) == (255, 0, 0)
    assert intake.notes == ("The file has 3 frames; the lab uses the first one.",)


def test_multipage_tiff_gives_its_first_page_and_says_so():
    pages = [Image.new("RGB", (16, 16), colour) for colour in ("yellow", "black")]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    intake = read_image(data)
    assert tuple(np.asarray(intake.image)[0, 0]) == (255, 255, 0)
    assert "2 pages" in intake.notes[0]


def test_transparent_modes_are_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert tuple(np.asarray(load_image(rgba))[0, 0]) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (0, 128))  # half-transparent black
    assert abs(int(np.asarray(load_image(encode(la, "PNG")))[0, 0, 0]) - 127) <= 1
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.info["transparency"] = 0
    rgb = np.asarray(load_image(encode(p, "PNG", transparency=0)))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[1, 1]) == (255, 0, 0)


def test_sixteen_bit_is_rescaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    assert image.mode == "I;16"
    for decoded in (load_image(image), load_image(encode(image, "PNG")), load_image(values)):
        assert list(np.asarray(decoded)[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize("mode", ["1", "L", "CMYK", "YCbCr"])
def test_other_modes_become_rgb(mode):
    source = Image.new("RGB", (8, 8), (255, 255, 255)).convert(mode)
    image = load_image(source)
    assert image.mode == "RGB"
    assert np.asarray(image).min() > 200  # white stays (nearly) white


def test_every_kind_of_source(tmp_path):
    source = Image.new("RGB", (6, 4), (10, 20, 30))
    path = tmp_path / "photo.png"
    source.save(path)
    expected = np.asarray(source)
    with open(path, "rb") as f:
        from_file = load_image(f)
    for result in (
        load_image(path),
        load_image(str(path)),
        load_image(path.read_bytes()),
        from_file,
        load_image(source),
        load_image(expected),
    ):
        assert np.array_equal(np.asarray(result), expected)
    assert np.asarray(load_image(expected / 255.0))[0, 0].tolist() == [10, 20, 30]
    assert np.asarray(load_image(np.ones((2, 2), bool)))[0, 0].tolist() == [255, 255, 255]


def test_bad_arrays_and_sources():
    with pytest.raises(ImageError, match="must be H×W, H×W×3 or H×W×4; this one is 2×2×5"):
        load_image(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2), np.nan))
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        load_image(42)


def test_samples_are_real_photos_without_network():
    photos = sample_images()
    assert set(photos) == {"chelsea", "astronaut", "coffee", "rocket", "camera", "grace_hopper"}
    for name, photo in photos.items():
        assert photo.mode == "RGB" and min(photo.size) >= 200, name
        assert np.asarray(photo).std() > 20, name  # a photograph, not a flat fill
    files = sample_files()
    assert set(files) == set(photos)
    assert np.array_equal(np.asarray(load_image(files["coffee"])), np.asarray(photos["coffee"]))
