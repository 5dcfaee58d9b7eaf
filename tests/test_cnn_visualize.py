"""What a channel wants to see: feature visualisation, dataset examples, the disk cache, the atlas
command, the tab's streaming endpoint and the widget.

The quality test uses MobileNetV2's real ImageNet weights (seeded by conftest); the rest run the
same code with few steps on small images. Every disk-cache write goes to the session's
VLMLAB_CACHE (conftest).
"""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demo import cnn_featurevis
from demo.common import guard
from vlmlab import cnn, models
from vlmlab.cnn import featurevis as cnn_visualize
from vlmlab.cnn import featurevis_render as cnn_visualize_render
from vlmlab.cnn.atlas.__main__ import main as atlas_main
from vlmlab.cache import DiskCache, cache_dir
from vlmlab.errors import LabError
from vlmlab.images import sample_files, sample_images

REAL = "mobilenet_v2"
SIDE = cnn_visualize_render.EXAMPLE_SIDE  # px: each dataset example's tile
MIDDLE = "block9"  # of conv1, block1 … block17, conv2: 64 channels of 14×14
HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def shared_model() -> torch.nn.Module:
    return models.load_model(REAL, topic="cnn").model


def leftovers(model: torch.nn.Module) -> list[str]:
    """Hooks, gradients or changed switches left on the shared model."""
    found = [
        f"{name}.{kind}" for name, m in model.named_modules() for kind in HOOKS if getattr(m, kind)
    ]
    found += [f"{name}.grad" for name, p in model.named_parameters() if p.grad is not None]
    found += [name for name, m in model.named_modules() if m.training]
    return found


def cached_files() -> set[str]:
    folder = cache_dir() / "featurevis"
    return {p.name for p in folder.glob("*.png")} if folder.exists() else set()


# ---------------------------------------------------------------------------------------------
# Quality, with real weights


def test_the_channel_fires_far_harder_than_on_any_photo_and_the_image_is_not_noise():
    """Three channels of a middle layer, 96 steps at 96×96 (the tab runs 256 at 224×224).

    Activation: the channel's mean activation on the finished image, against its highest mean
    activation on any sample photo (as the model sees them in the feature-map view).
    Not noise: the slope of the radially averaged power spectrum (`power_spectrum_slope`):
    white noise ≈ 0, the sample photos ≈ −3; the images must fall at least as 1/f.
    """
    channels = [0, 1, 2]
    captures = [cnn.capture_features(photo, REAL) for photo in sample_images().values()]
    results = cnn.visualize_many(REAL, MIDDLE, channels, steps=96, size=96, batch=3)
    assert [r.channel for r in results] == channels and all(r.complete for r in results)
    for result in results:
        assert result.image.size == (96, 96) and result.layer == MIDDLE
        fired = cnn_visualize.channel_activation(result.image, REAL, MIDDLE, result.channel)
        on_photos = max(float(c.means[MIDDLE][result.channel]) for c in captures)
        assert fired >= 5 * on_photos > 0, (result.channel, fired, on_photos)
        slope = cnn_visualize.power_spectrum_slope(result.image)
        assert slope < -1.0, (result.channel, slope)
    pixels = [np.asarray(r.image, np.float32) for r in results]
    assert np.abs(pixels[0] - pixels[1]).mean() > 10  # each channel wants its own picture
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8))
    assert abs(cnn_visualize.power_spectrum_slope(noise)) < 0.5  # the measure tells noise apart

    # A second student asking for the same channel gets it from the disk cache, unchanged.
    again = cnn.visualize(REAL, MIDDLE, 1, steps=96, size=96)
    assert again.cached and again.done and again.complete
    assert np.array_equal(np.asarray(again.image), np.asarray(results[1].image))
    assert again.activation == pytest.approx(results[1].activation)


# ---------------------------------------------------------------------------------------------
# The shared model is left as it was


def test_no_hooks_or_gradients_are_left_and_the_weights_do_not_change(chelsea):
    model = shared_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    switches = [getattr(m, "inplace", None) for m in model.modules()]
    switches += [p.requires_grad for p in model.parameters()]
    cnn.visualize(REAL, "block3", 5, steps=3, size=64, seed=11)
    frames = cnn.visualize_steps(REAL, "conv2", 7, steps=40, size=64, seed=12, every=1)
    assert next(frames).step == 1
    frames.close()  # a page that went away: the generator is closed mid-run
    assert leftovers(model) == []
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    assert switches == [getattr(m, "inplace", None) for m in model.modules()] + [
        p.requires_grad for p in model.parameters()
    ]
    assert cnn.classify(chelsea, REAL, 1)[0][0] in {"Egyptian cat", "tiger cat", "tabby"}


def test_feature_maps_are_unchanged_while_a_channel_is_optimised_beside_them():
    """A forward in another request (the feature-map view) while an optimisation runs."""
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), np.uint8))
    cnn.prepare([REAL])  # traced before serving, as the app does (tracing patches every forward)
    loaded = models.load_model(REAL, topic="cnn")
    fixed = loaded.processor(photo)[None]
    with torch.inference_mode():
        reference = loaded.model(fixed)
    errors: list[BaseException] = []

    def optimise():
        try:
            cnn.visualize(REAL, "block5", 2, steps=12, size=64, seed=21)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    worker = threading.Thread(target=optimise)
    worker.start()
    while worker.is_alive():
        with torch.inference_mode():
            # The same logits (to float rounding: threads may split a sum differently).
            assert torch.allclose(loaded.model(fixed), reference, rtol=0, atol=1e-4)
    worker.join()
    assert errors == [] and leftovers(loaded.model) == []


# ---------------------------------------------------------------------------------------------
# Steps, batches, time limit, cache


def test_a_channel_gets_the_same_image_alone_or_in_a_batch():
    batch = cnn.visualize_many(REAL, "block6", [3, 9], steps=6, size=64, pretrained=False)
    alone = cnn.visualize(REAL, "block6", 9, steps=6, size=64, pretrained=False)
    a, b, other = (np.asarray(r.image, np.float64).ravel() for r in (batch[1], alone, batch[0]))
    # The same start, transforms and objective. Float rounding differs with the batch, and
    # Adam's normalised first steps can carry it (seen: correlation 0.98–1.0, another channel
    # −0.2–0.45), so the images are compared by correlation, not pixel for pixel.
    same, different = np.corrcoef(a, b)[0, 1], np.corrcoef(a, other)[0, 1]
    assert same > 0.8 and same > different
    assert not alone.cached and alone.activation == pytest.approx(batch[1].activation, rel=0.1)


def test_frames_stream_and_the_last_one_says_it_is_done():
    frames = list(cnn.visualize_steps(REAL, "block2", 4, steps=8, size=64, seed=3, every=3))
    assert [f.step for f in frames] == [3, 6, 8]
    assert [f.done for f in frames] == [False, False, True] and frames[-1].complete
    assert "step 3 of 8" in frames[0].describe() and "8 steps in" in frames[-1].describe()
    hate = cnn.visualize(REAL, "block2", 4, steps=8, size=64, seed=3, direction="hate")
    assert hate.activation < frames[-1].activation and "hates" in hate.describe()


def test_a_run_stopped_by_its_time_limit_is_shown_but_not_cached():
    before = cached_files()
    found = cnn.visualize(REAL, "block1", 2, steps=500, size=64, seed=4, time_limit=0)
    assert found.done and not found.complete and found.step < 500
    assert "s limit" in found.describe() and cached_files() == before


def test_the_disk_cache_is_bounded_and_keeps_what_was_used_last(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    tiles = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)) for _ in range(8)]
    one = len(tiles[0].tobytes())  # noise hardly compresses: about 12 KB a file
    cache = DiskCache("test", max_mb=3.5 * one / 2**20)
    keys = [f"{i:02x}" for i in range(8)]
    cache.put(keys[0], tiles[0], {"note": "kept"})
    for key, tile in zip(keys[1:], tiles[1:]):
        assert cache.get(keys[0]) is not None  # read again each time: recently used
        cache.put(key, tile)
        assert cache.size() <= cache.max_bytes
    image, text = cache.get(keys[0])
    assert np.array_equal(np.asarray(image), np.asarray(tiles[0])) and text == {"note": "kept"}
    assert cache.get(keys[1]) is None and cache.get(keys[7]) is not None  # the oldest went
    assert (tmp_path / "test").is_dir()
    assert cache.get("ff") is None  # never written
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")


def test_the_cache_lives_under_the_user_cache_dir_unless_told(monkeypatch, tmp_path):
    monkeypatch.delenv("VLMLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "vlmlab"
    monkeypatch.setenv("VLMLAB_CACHE", str(tmp_path / "lab"))
    assert cache_dir() == tmp_path / "lab"


# ---------------------------------------------------------------------------------------------
# Bad input: one sentence each, before anything runs


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"layer": "conv9"}, r"Unknown layer 'conv9'; choose one of: conv1, block1"),
        ({"channel": 64}, "block9 has channels 0 to 63"),
        ({"channel": -1}, "block9 has channels 0 to 63"),
        ({"channel": float("nan")}, "block9 has channels 0 to 63"),
        ({"steps": 0}, "steps must be a whole number from 1 to 4096"),
        ({"steps": 10**9}, "steps must be a whole number from 1 to 4096"),
        ({"steps": float("nan")}, "steps must be a whole number from 1 to 4096"),
        ({"size": 1}, "size must be a whole number from 64 to 512"),
        ({"size": 10_000}, "size must be a whole number from 64 to 512"),
        ({"size": float("inf")}, "size must be a whole number from 64 to 512"),
        ({"direction": "love"}, "The direction must be 'want'"),
        ({"model": "lenet"}, "Unknown model 'lenet'; choose one of: alexnet"),
        ({"model": "openai/clip-vit-base-patch32"}, "Unknown model"),
    ],
)
def test_bad_input_gets_one_clear_sentence(call, message):
    settings = {
        "model": REAL,
        "layer": MIDDLE,
        "channel": 0,
        "steps": 4,
        "size": 64,
        "direction": "want",
    }
    settings.update(call)
    model, layer, channel = settings.pop("model"), settings.pop("layer"), settings.pop("channel")
    with pytest.raises(LabError, match=message) as caught:
        cnn.visualize(model, layer, channel, **settings)
    assert "\n" not in str(caught.value)


def test_a_missing_model_says_so_and_leaves_nothing_behind():
    with pytest.raises(LabError, match=r"AlexNet .* is not on this machine"):
        cnn.visualize("alexnet", "conv1", 0, steps=2, size=64)


# ---------------------------------------------------------------------------------------------
# Dataset examples


def test_dataset_examples_are_where_the_channel_fires_hardest(chelsea):
    found = cnn.dataset_examples(REAL, "block4", 3, chelsea)
    assert [e.source for e in found].count("your photo") == 1 and len(found) == 7
    values = [e.value for e in found]
    assert values == sorted(values, reverse=True)
    photos = {"your photo": chelsea, **sample_images()}
    field = cnn.architecture(REAL).layer("block4").receptive_field
    for example in found:
        maps = cnn.capture_features(photos[example.source], REAL).maps["block4"][3]
        assert example.value == pytest.approx(float(maps.astype(np.float32).max()))
        left, top, right, bottom = example.box
        assert right - left == bottom - top == min(max(field, 16), 112)
        assert 0 <= left and 0 <= top and right <= 224 and bottom <= 224
        assert example.crop.size == (right - left, bottom - top)
    hated = cnn.dataset_examples(REAL, "block4", 3, direction="hate")
    assert len(hated) == 6 and [e.value for e in hated] == sorted(e.value for e in hated)
    tiles = cnn_visualize_render.example_tiles(found)
    assert tiles[0][0].size == (112, 112) and tiles[0][1].startswith(found[0].source)


# ---------------------------------------------------------------------------------------------
# The atlas command


def test_the_atlas_writes_a_grid_and_fills_the_cache(tmp_path, capsys, monkeypatch):
    out = tmp_path / "atlas.png"
    args = ["mobilenet_v2", "block2", "--channels", "0-3,5", "--steps", "3", "--size", "64",
            "--tile", "32", "--out", str(out)]  # fmt: skip
    before = cached_files()
    assert atlas_main(args) == 0
    assert len(cached_files() - before) == 5
    grid = Image.open(out)
    assert grid.size == (3 * (32 + 4) + 4, 2 * (32 + 16 + 4) + 4)  # 3 columns, 2 rows
    assert "5 channels of mobilenet_v2 block2" in capsys.readouterr().out

    def no_optimising(*args, **kwargs):
        raise AssertionError("the atlas ran again instead of reading the cache")

    monkeypatch.setattr(cnn_visualize, "_optimise", no_optimising)
    assert atlas_main(args) == 0  # all five from the cache
    assert atlas_main(["mobilenet_v2", "block2", "--channels", "0-99"]) == 2
    assert "This layer has channels 0 to 23" in capsys.readouterr().err
    assert atlas_main(["lenet", "conv1"]) == 2


# ---------------------------------------------------------------------------------------------
# The tab, its streaming endpoint, the widget


def test_the_tab_handler_streams_examples_first_then_the_image():
    photo = str(sample_files()["chelsea"])
    updates = list(cnn_featurevis.visualize_channel(photo, REAL, "block1", 2, "want", 16, None))
    image, on_photo, tiles, caption = updates[0]
    # the channel over the photo, drawn with its colour bar under it
    drawn = Image.open(on_photo)
    assert image is None and drawn.width >= 224 and drawn.height > drawn.width
    assert len(tiles) == 7 and all(Image.open(tile).size == (SIDE,) * 2 for tile, _ in tiles)
    # Sent with every frame as the files written once, not drawn and encoded again per frame.
    assert all(update[1] == on_photo and update[2] == tiles for update in updates)
    assert "block1 channel 2" in caption
    assert len(updates) == 1 + 16  # a frame per step for 16 steps
    assert updates[-1][0].size == (224, 224) and "16 steps in" in updates[-1][3]
    with pytest.raises(LabError, match="steps must be a whole number from 1 to 512"):
        next(cnn_featurevis.visualize_channel(photo, REAL, "block1", 2, "want", 1000, None))


@pytest.fixture(scope="module")
def cnn_app(launch_tabs):
    with launch_tabs(only=("cnn",)) as app:
        yield app


def test_the_endpoint_streams_and_refuses_bad_input(cnn_app):
    from gradio_client import handle_file

    photo = handle_file(str(sample_files()["coffee"]))
    job = cnn_app.client.submit(photo, REAL, "block1", 3, "hate", 16, api_name="/visualize_channel")
    updates = list(job)
    assert len(updates) >= 3  # the examples first, then the image forming
    assert "hates" in updates[-1][3] and updates[-1][0]
    info = cnn_app.client.view_api(return_format="dict", print_info=False)
    names = [
        p["parameter_name"] for p in info["named_endpoints"]["/visualize_channel"]["parameters"]
    ]
    assert names == ["photo", "model", "layer", "channel", "direction", "steps"]
    for bad, message in (((REAL, "block1", 99, "want", 16), "block1 has channels 0 to 15"),
                         ((REAL, "block1", 0, "want", 10**9), "512"),
                         (("lenet", "block1", 0, "want", 16), "lenet")):  # fmt: skip
        with pytest.raises(Exception, match=message):
            cnn_app.client.predict(photo, *bad, api_name="/visualize_channel")


def test_the_widget_shows_examples_then_the_image_on_request(chelsea):
    from widgets.cnn import ChannelVisualizer

    view = ChannelVisualizer(chelsea, REAL, "block3", 1, steps=16, size=64)
    assert len(view.examples.children) == 7 and view.picture.value == b""
    last = view.run()
    assert last.done and view.picture.value and "16 steps" in view.caption.value
    view.channel.value = 10**5
    assert "block3 has channels 0 to 23" in view.caption.value


def test_the_guarded_handler_turns_engine_errors_into_one_sentence():
    photo = str(sample_files()["chelsea"])
    with pytest.raises(gr.Error, match="Unknown layer 'conv99'"):
        next(guard(cnn_featurevis.visualize_channel)(photo, REAL, "conv99", 0, "want", 16, None))


@pytest.mark.parametrize("setting", ["two minutes", "nan", "-5", "0"])
def test_a_bad_time_limit_setting_falls_back_to_the_default_with_a_warning(
    setting, monkeypatch, caplog
):
    monkeypatch.setenv(cnn_featurevis.TIME_LIMIT_ENV, setting)
    with caplog.at_level("WARNING", logger="vlmlab"):
        assert cnn_featurevis.time_limit_from_env() == cnn_featurevis.DEFAULT_TIME_LIMIT
    assert cnn_featurevis.TIME_LIMIT_ENV in caplog.text and repr(setting) in caplog.text
    monkeypatch.setenv(cnn_featurevis.TIME_LIMIT_ENV, "45")
    assert cnn_featurevis.time_limit_from_env() == 45.0


def test_the_cnn_tab_imports_with_a_bad_time_limit_setting():
    """The setting is read when the tab's module is imported: a typo must not stop the app."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = "import demo.cnn_tab, demo.cnn_featurevis as t; print(t.TIME_LIMIT)"
    env = {**os.environ, "VLMLAB_VISUALIZE_SECONDS": "two minutes"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "120.0"
    assert "VLMLAB_VISUALIZE_SECONDS must be a positive number" in done.stderr
