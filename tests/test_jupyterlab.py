"""The widgets as a student meets them: JupyterLab in Debian's Chromium, driven by Playwright.

One JupyterLab for the module, on a free loopback port with a token, serving copies of the
notebooks (JupyterLab saves outputs into what it opens). The widgets are drawn by the stock
ipywidgets front end (jupyterlab_widgets, where the server runs); the kernel is the notebooks'
own `python3`, with the checkout on its path and the test session's offline models. Screenshots
go to artifacts/jupyterlab/ for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "jupyterlab"
WAIT = 120_000  # ms: a kernel's first imports and model loads on a loaded 2-core machine
TOKEN = "vlmlab-test-" + os.urandom(8).hex()

# Every widget of the lab that draws images, on one page (the notebooks hold them across six).
GALLERY = [
    "from vlmlab.images import sample_images\n"
    "from vlmlab.widgets.pixels import PixelInspector\n"
    "from vlmlab.widgets.cnn import EvidenceView, FeatureMapBrowser, FilterGallery, PredictionView\n"
    "from vlmlab.widgets.vit import AttentionBrowser, PatchExplorer\n"
    "from vlmlab.widgets.clip import ZeroShotClassifier\n"
    "from vlmlab.widgets.captioning import Captioner\n"
    "from vlmlab.widgets.vqa import QuestionBox\n"
    'photo = sample_images()["chelsea"]',
    'PredictionView(photo, "mobilenet_v2")',
    'FeatureMapBrowser(photo, "mobilenet_v2")',
    'FilterGallery("mobilenet_v2")',
    'EvidenceView(photo, "mobilenet_v2")',
    "PixelInspector(photo)",
    "PatchExplorer(photo)",
    "AttentionBrowser(photo)",
    "ZeroShotClassifier(photo)",
    "Captioner(photo)",
    "QuestionBox(photo)",
]
# JupyterLab's own settings for the test: every cell drawn (no windowing, so every widget can be
# measured), no news or update checks (no network here).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: Path, sources: list[str]) -> None:
    setup = nbformat.read(ROOT / "notebooks" / "02_convolution.ipynb", as_version=4).cells[1]
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    notebook.cells = [setup] + [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jupyterlab")
    served, settings = folder / "served", folder / "settings"
    served.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_convolution.ipynb", served)
    _notebook(served / "gallery.ipynb", GALLERY)
    for name, values in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), JUPYTER_RUNTIME_DIR=str(folder / "runtime"))
    env["JUPYTER_CONFIG_DIR"] = str(folder / "config")  # nothing from ~/.jupyter
    log = (folder / "jupyterlab.log").open("w")
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={served}",
        f"--LabServerApp.user_settings_dir={settings}",
        f"--LabServerApp.workspaces_dir={folder / 'workspaces'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--expose-app-in-browser",
        "--allow-root",  # harmless when not root; JupyterLab refuses root without it
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "JupyterLab did not start:\n" + (folder / "jupyterlab.log").read_text()[-3000:]
                )
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Notebook:
    """A notebook open in JupyterLab, all its cells run."""

    def __init__(self, browser, url: str, name: str, width: int):
        self.context = browser.new_context(
            viewport={"width": width, "height": 1000}, device_scale_factor=1
        )
        self.context.set_default_timeout(WAIT)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.name = Path(name).stem
        # A workspace of its own: JupyterLab would otherwise reopen the other notebook beside it.
        self.page.goto(f"{url}lab/workspaces/{self.name}/tree/{name}?reset&token={TOKEN}")
        self.page.wait_for_function(
            "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-CodeCell')"
        )
        self.page.wait_for_function(
            """() => {
                const panel = window.jupyterapp.shell.currentWidget;
                const kernel = panel && panel.sessionContext && panel.sessionContext.session
                    && panel.sessionContext.session.kernel;
                return kernel && kernel.connectionStatus === 'connected'
                    && kernel.status === 'idle';
            }"""
        )
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # Done when every cell has run, or a cell failed (Run All stops there) and all is idle.
        try:
            self._wait_for_all_cells()
        except Exception:
            self.shoot(f"{self.name}-unfinished")
            prompts = self.page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            raise AssertionError(f"{name} did not finish running: prompts {prompts}") from None
        assert not self.problems(), self.problems()

    def _wait_for_all_cells(self) -> None:
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                if (prompts.every(prompt => /\\[\\d+\\]/.test(prompt.textContent))) return true;
                const kernel = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;
                return kernel?.status === 'idle' && !prompts.some(p => p.textContent.includes('*'))
                    && document.querySelector('.jp-OutputArea-output[data-mime-type='
                        + '"application/vnd.jupyter.stderr"]') !== null;
            }""",
            timeout=240_000,
        )

    def cell(self, source: str):
        """The output of the code cell whose source contains `source`."""
        cells = self.page.locator(".jp-CodeCell").filter(has_text=source)
        return cells.last.locator(".jp-Cell-outputArea")

    def shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def problems(self) -> list[str]:
        """Tracebacks in outputs, widgets drawn as their text repr, widget errors, page errors."""
        outputs = self.page.locator(".jp-OutputArea-output").all_inner_texts()
        found = [t[:300] for t in outputs if "Traceback" in t or "(children=(" in t]
        found += self.page.locator(".jupyter-widgets-error-widget, .jp-RenderedText[data-mime-type"
                                   "='application/vnd.jupyter.stderr']").all_inner_texts()
        return found + self.errors

    def close(self) -> None:
        self.context.close()


def _image_bytes(locator) -> bytes:
    locator.scroll_into_view_if_needed()
    return locator.screenshot()


def _wait_for_new_src(page, image, before: str) -> None:
    page.wait_for_function(
        "([image, before]) => image.getAttribute('src') !== before && image.complete",
        arg=[image.element_handle(), before],
    )


@pytest.fixture(scope="module")
def convolution(browser, jupyterlab):
    notebook = Notebook(browser, jupyterlab, "02_convolution.ipynb", 1280)
    yield notebook
    notebook.close()


@pytest.fixture(scope="module")
def gallery(browser, jupyterlab):
    notebook = Notebook(browser, jupyterlab, "gallery.ipynb", 1280)
    yield notebook
    notebook.close()


def test_the_kernel_explorer_reacts_in_jupyterlab(convolution):
    explorer = convolution.cell('KernelExplorer(photo, "Sobel left"')
    preset = explorer.locator(".widget-dropdown", has_text="preset").locator("select")
    result = explorer.locator("img.widget-image").first
    assert preset.input_value() == "Sobel left"
    before_src, before = result.get_attribute("src"), _image_bytes(result)

    preset.select_option("box blur")  # the preset fills the grid and re-filters the photo
    _wait_for_new_src(convolution.page, result, before_src)
    blurred_src, blurred = result.get_attribute("src"), _image_bytes(result)
    assert blurred != before
    cells = explorer.locator(".widget-gridbox input")
    assert cells.count() == 9 and cells.nth(4).input_value() == "0.111111"

    cells.nth(4).fill("-8")  # one grid cell: the kernel becomes custom, the output changes
    cells.nth(4).press("Enter")
    _wait_for_new_src(convolution.page, result, blurred_src)
    assert _image_bytes(result) != blurred
    assert preset.input_value() == "custom"
    assert "-8" in explorer.locator(".widget-textarea textarea").first.input_value()
    convolution.shoot("02_convolution")
    assert not convolution.problems()


def test_the_cnn_widgets_draw_mobilenets_predictions_in_jupyterlab(gallery):
    predictions = gallery.cell('PredictionView(photo, "mobilenet_v2")')
    bars = predictions.locator(".widget-html table tr")
    assert bars.count() == 5
    assert "cat" in bars.first.inner_text().lower()  # real ImageNet weights: chelsea is a cat
    network = predictions.locator(".widget-dropdown", has_text="network").locator("select")
    names = network.locator("option").all_inner_texts()
    network.select_option(label=next(n for n in names if n.startswith("AlexNet")))
    # No AlexNet weights here: the sentence, in the widget.
    warning = predictions.locator(".widget-html p[style*='color']")
    warning.wait_for()
    assert "alexnet" in warning.inner_text().lower() and bars.count() == 0
    network.select_option(label=next(n for n in names if n.startswith("MobileNetV2")))
    predictions.locator(".widget-html table").wait_for()
    assert "cat" in bars.first.inner_text().lower()

    maps = gallery.cell('FeatureMapBrowser(photo, "mobilenet_v2")')
    grid = maps.locator("img.widget-image").first
    layer = maps.locator(".widget-dropdown", has_text="layer").locator("select")
    before_src, before = grid.get_attribute("src"), _image_bytes(grid)
    options = layer.locator("option").all_inner_texts()
    layer.select_option(options[len(options) // 2])
    _wait_for_new_src(gallery.page, grid, before_src)
    assert _image_bytes(grid) != before
    gallery.shoot("cnn_widgets")
    assert not gallery.problems()


MEASURE = """() => [...document.querySelectorAll('.jp-OutputArea img.widget-image')]
    .filter(image => image.naturalWidth > 0)
    .map(image => {
        const box = image.getBoundingClientRect();
        const cell = image.closest('.jp-CodeCell').querySelector('.jp-InputArea').innerText;
        return {cell: cell.trim().split('\\n').pop(), width: box.width, height: box.height,
                natural: [image.naturalWidth, image.naturalHeight],
                room: image.closest('.jp-OutputArea').getBoundingClientRect().width};
    })"""

# The widest line of each text box against the room inside it (a kernel row must not wrap).
TEXT_FITS = """() => [...document.querySelectorAll('.jp-OutputArea .widget-textarea textarea')]
    .filter(box => box.value.includes('\\n') && /^[-0-9 ./\\n]+$/.test(box.value))
    .map(box => {
        const style = getComputedStyle(box);
        const context = document.createElement('canvas').getContext('2d');
        context.font = style.font;
        const widest = Math.max(...box.value.split('\\n').map(l => context.measureText(l).width));
        const room = box.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight);
        return {text: box.value.split('\\n')[0], widest, room};
    })"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_images_keep_their_aspect_ratio_at_every_width(convolution, gallery, width):
    explorer = convolution.cell('KernelExplorer(photo, "Sobel left"')
    text = explorer.locator(".widget-textarea textarea").first
    preset = explorer.locator(".widget-dropdown", has_text="preset").locator("select")
    preset.select_option("unsharp mask 5×5")  # the widest preset in the "as text" box
    convolution.page.wait_for_function(
        "(box) => box.value.split('\\n').length === 5", arg=text.element_handle()
    )
    for notebook, least in ((convolution, 4), (gallery, 12)):
        notebook.page.set_viewport_size({"width": width, "height": 1000})
        notebook.page.wait_for_timeout(500)  # one layout pass after the resize
        images = notebook.page.evaluate(MEASURE)
        assert len(images) >= least, images
        stretched = [
            image
            for image in images
            if abs(image["height"] - image["width"] * image["natural"][1] / image["natural"][0])
            > 2
            or image["width"] > image["room"] + 1
        ]
        assert not stretched, f"images drawn out of proportion at {width} px: {stretched}"
        boxes = notebook.page.evaluate(TEXT_FITS)
        wrapped = [box for box in boxes if box["widest"] > box["room"]]
        assert not wrapped, f"text boxes too narrow for their rows at {width} px: {wrapped}"
        notebook.shoot(f"{notebook.name}-{width}")
        assert not notebook.problems()
