"""Shared test setup: an offline model world, built once per test session.

Runs before anything imports transformers, huggingface_hub or torch.hub (they read `HF_HOME`,
`HF_HUB_OFFLINE` and `TORCH_HOME` when imported or first used). One temporary folder holds a
Hugging Face cache of tiny real-format checkpoints under the lab's real default model ids and a
torch hub holding torchvision's real MobileNetV2 ImageNet weights (see tests/tiny_models.py).
The variables are set in `os.environ`, so subprocesses (notebook kernels, a launched app) see the
same caches. The folder is removed when the session ends.
"""

from __future__ import annotations

# =============================================================================================
# 1. Environment: must come first, before any import of transformers / huggingface_hub / torch.
# =============================================================================================
import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

_ALREADY_IMPORTED = [m for m in ("huggingface_hub", "transformers") if m in sys.modules]
if _ALREADY_IMPORTED:  # pragma: no cover - a plugin imported them first: the cache would leak
    raise RuntimeError(
        f"{', '.join(_ALREADY_IMPORTED)} was imported before tests/conftest.py could point HF_HOME "
        "at the test cache; remove the plugin or import that loads it."
    )

SESSION_DIR = Path(tempfile.mkdtemp(prefix="vlmlab-tests-"))
_SESSION_PID = os.getpid()


@atexit.register
def _remove_session_dir() -> None:
    if os.getpid() == _SESSION_PID:  # not in a forked child that happens to exit normally
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


HF_HOME = SESSION_DIR / "hf_home"
TORCH_HOME = SESSION_DIR / "torch_home"

os.environ["HF_HOME"] = str(HF_HOME)
os.environ["HF_HUB_CACHE"] = str(HF_HOME / "hub")  # beats any HF_HUB_CACHE inherited from the shell
for _legacy in ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE"):
    os.environ.pop(_legacy, None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TORCH_HOME"] = str(TORCH_HOME)
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["MPLBACKEND"] = "Agg"
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # no fork warnings from kernels / app subprocesses

os.environ["VLMLAB_CACHE"] = str(SESSION_DIR / "vlmlab_cache")  # feature visualisations on disk
# The session loads far more (tiny and random) models than a lab's budget of 12; the budget
# itself is tested with its own small limit (test_models_by_name.py).
os.environ.setdefault("VLMLAB_MAX_LOADED_MODELS", "64")
# (Add further environment variables here, still above the imports below.)

# =============================================================================================
# 2. Build the offline model world (a few seconds; eager so subprocesses can use it at once).
# =============================================================================================
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # `import tiny_models`, whatever pytest's import mode
    sys.path.insert(0, _TESTS_DIR)

import tiny_models

_start = time.perf_counter()
tiny_models.build_tiny_hub(HF_HOME)
tiny_models.seed_torch_home(TORCH_HOME)
BUILD_SECONDS = time.perf_counter() - _start

import numpy as np
import pytest
from PIL import Image


def pytest_report_header(config):
    return f"vlmlab: tiny HF hub + torch hub in {SESSION_DIR} (built in {BUILD_SECONDS:.1f} s)"


# =============================================================================================
# 3. Fixtures: caches
# =============================================================================================


@pytest.fixture(scope="session")
def hf_home() -> Path:
    """The session's HF_HOME; its `hub/` holds the tiny models under the real default ids."""
    return HF_HOME


@pytest.fixture(scope="session")
def torch_home() -> Path:
    """The session's TORCH_HOME; `hub/checkpoints/` holds the real MobileNetV2 ImageNet weights."""
    return TORCH_HOME


# =============================================================================================
# 4. Fixtures: real photographs (fresh PIL RGB images, safe to modify)
# =============================================================================================

_PHOTOS: dict[str, np.ndarray] = {}


def _photo(name: str) -> Image.Image:
    if name not in _PHOTOS:
        from skimage import data

        _PHOTOS[name] = getattr(data, name)()
    return Image.fromarray(_PHOTOS[name]).convert("RGB")


@pytest.fixture
def chelsea() -> Image.Image:
    """scikit-image's Chelsea the cat, 451x300 RGB (MobileNetV2: tabby / tiger / Egyptian cat)."""
    return _photo("chelsea")


@pytest.fixture
def coffee() -> Image.Image:
    """scikit-image's cup of coffee, 600x400 RGB (MobileNetV2 calls it espresso)."""
    return _photo("coffee")


# =============================================================================================
# 5. Fixtures: models (add loaded-model / app / notebook fixtures below)
# =============================================================================================


@contextlib.contextmanager
def launched(only: tuple[str, ...] | None = None):
    """The app (or only the tabs `only` names) on a free loopback port, with a gradio_client.

    Yields a namespace: `demo` (the Blocks), `url`, `client` (gradio_client.Client), `config`.
    """
    import socket
    from types import SimpleNamespace

    from gradio_client import Client

    from demo import build_demo, launch_options

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo(only)
    demo.launch(**launch_options(port=port, prevent_thread_lock=True, quiet=True))
    try:
        client = Client(demo.local_url, verbose=False)
        yield SimpleNamespace(demo=demo, url=demo.local_url, client=client, config=demo.config)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module that asks for it."""
    from lab_api import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def launch_tabs():
    """`launched` itself, for module fixtures that serve only their topic's tabs."""
    return launched


@pytest.fixture(scope="session")
def lab_app():
    """The whole app, launched once for the session (see `launched`)."""
    with launched() as app:
        yield app
