"""Every tab clicked in a real browser: Debian's Chromium driven by Playwright, headless.

One page for the module, against the session's launched lab. Each tab test picks a sample photo
(one test uploads a file from disk instead), changes a control, runs, and checks what a person
would see; a screenshot per tab goes to artifacts/screenshots/ for a human to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lab_api import animated_gif, assert_alive

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
WAIT = 90_000  # ms: the first model load on a loaded 2-core machine


@pytest.fixture(scope="module")
def page(browser, lab_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    context.set_default_timeout(WAIT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(lab_app.url)
    page.locator("#photo-preview img").wait_for()
    page.errors = errors
    yield page
    context.close()


# ---------------------------------------------------------------------------------------------
# What a person does


def pick_sample(page, name: str, size: str) -> None:
    """Click a sample's thumbnail and wait until the lab says it uses it ("600×400 pixels")."""
    page.locator(f'#photo-samples button:has(img[alt="{name}"])').click()
    expect(page.locator("#photo-notes")).to_contain_text(size)
    wait_idle(page)


TAB_IDS = {
    "Pixels": "pixels",
    "Convolution": "convolution",
    "CNN": "cnn",
    "ViT": "vit",
    "Contrastive": "contrastive",
    "CLIP": "clip",
    "Captioning": "captioning",
    "VQA": "vqa",
}


def dismiss_toasts(page) -> None:
    """Close error toasts left by an earlier test, so each test judges only its own."""
    for close in page.locator("[data-testid=toast-close]:visible").all():
        close.click()


def open_tab(page, title: str):
    dismiss_toasts(page)
    page.get_by_role("tab", name=title, exact=True).click()
    panel = page.locator(f"#tab-{TAB_IDS[title]}")
    expect(panel).to_be_visible()
    wait_idle(page)  # a tab may refresh itself for the photo when it opens
    return panel


def choose(page, label: str, option: str, scope=None) -> None:
    """Pick the option whose name starts with `option` in the dropdown labelled `label`."""
    (scope or page).get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()


def set_number(scope, label: str, value) -> None:
    """Type into the number box of a slider or number field labelled `label`, then leave it."""
    slider_box = scope.get_by_label(f"number input for {label}", exact=True)
    box = (slider_box if slider_box.count() else scope.get_by_label(label, exact=True)).first
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    wait_idle(scope.page)


IDLE = """() => [...document.querySelectorAll('[data-testid=status-tracker]')].every(
    e => e.classList.contains('hide') || e.textContent.includes('Error'))"""


def wait_idle(page) -> None:
    """Wait until no event is pending or running (every progress tracker hidden)."""
    page.wait_for_timeout(250)  # the click's event registers first
    page.wait_for_function(IDLE)


def click(page, name: str) -> None:
    """Press a button, as a person does, and wait for what it started to finish."""
    page.get_by_role("button", name=name, exact=True).click()
    wait_idle(page)


def block(scope, label: str):
    """The component whose visible label is `label` (Gradio images have no aria label)."""
    title = scope.locator("[data-testid=block-label]", has_text=label).first
    return title.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' block ')][1]")


def image_size(locator) -> tuple[int, int]:
    """The natural size of the first <img> under `locator`, once it has loaded."""
    img = locator.locator("img").first
    img.wait_for()
    page = locator.page
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return tuple(img.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def shoot(page, panel, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(300)  # let transitions settle
    panel.screenshot(path=str(path))
    return path


def no_error_toasts(page) -> None:
    toasts = page.locator("[data-testid=toast-body]:visible")
    assert toasts.count() == 0, toasts.all_inner_texts()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT)
    return playwright_expect(locator)


# ---------------------------------------------------------------------------------------------
# The photo picker


def test_a_new_page_shows_the_default_photo_in_the_first_tab_at_once(page):
    # Nothing picked yet: the lecture opens on Chelsea, already as numbers.
    expect(page.locator("#photo-notes")).to_contain_text("451×300 pixels")
    expect(page.locator("#pixels-facts")).to_contain_text("(300, 451, 3)")
    expect(page.locator("#pixels-spaces")).to_contain_text("HSV")
    no_error_toasts(page)


def test_a_photo_uploaded_from_disk_is_used_and_its_frames_are_explained(page, lab_app, tmp_path):
    gif = tmp_path / "blink.gif"
    gif.write_bytes(animated_gif([(230, 30, 30), (30, 30, 230), (30, 230, 30)]))
    # Dropped on the upload zone as it is: nothing to clear first.
    page.locator("#photo-file input[type=file]").set_input_files(str(gif))
    notes = page.locator("#photo-notes")
    expect(notes).to_contain_text("48×32 pixels")
    expect(notes).to_contain_text("3 frames; the lab uses the first one")
    assert image_size(page.locator("#photo-preview")) == (48, 32)
    page.wait_for_timeout(2000)  # the open tab (Pixels) re-renders for the new photo
    no_error_toasts(page)
    shoot(page, page.locator("body"), "photo-picker-upload")
    assert_alive(lab_app.url)


def test_a_file_that_is_not_an_image_is_explained_in_the_page(page, tmp_path):
    fake = tmp_path / "homework.png"
    fake.write_bytes(b"this is my homework, not a photo\n")
    page.locator("#photo-file input[type=file]").set_input_files(str(fake))
    toast = page.locator("[data-testid=toast-body]").first
    expect(toast).to_contain_text("not an image the lab can read")
    assert "Traceback" not in toast.inner_text()
    page.wait_for_timeout(1500)
    wait_idle(page)
    # Said once, by the photo picker; the open tab (Pixels) says it in place, not in a second box.
    assert page.locator("[data-testid=toast-body]:visible").count() == 1
    expect(page.locator("#pixels-facts")).to_contain_text("not an image the lab can read")
    shoot(page, page.locator("body"), "photo-not-an-image")
    dismiss_toasts(page)


# ---------------------------------------------------------------------------------------------
# One test per tab, in lecture order


def test_pixels_tab(page):
    pick_sample(page, "Coffee", "600×400 pixels")
    panel = open_tab(page, "Pixels")
    page.get_by_label("Lab", exact=True).check()
    set_number(panel, "Region size (pixels)", 8)
    expect(page.locator("#pixels-spaces")).to_contain_text("L*")
    expect(page.locator("#pixels-facts")).to_contain_text("(400, 600, 3)")
    width, height = image_size(page.locator("#pixels-grids"))
    assert width > 200 and height > 200  # a magnified grid of numbers
    no_error_toasts(page)
    shoot(page, panel, "1-pixels")


def test_convolution_tab(page):
    pick_sample(page, "Camera", "512×512 pixels")
    panel = open_tab(page, "Convolution")
    text = page.locator("#kernel-text textarea")
    text.fill("-1 0 1\n-2 0 2\n-1 0 1")  # no button to press: the result follows the text
    wait_idle(page)
    expect(page.get_by_label("Preset kernel", exact=True)).to_have_value("Sobel right")
    expect(panel.get_by_label("Output size").first).to_have_value(re.compile("512"))
    assert image_size(page.locator("#kernel-result")) == (512, 512)
    no_error_toasts(page)
    shoot(page, panel, "2-convolution")


def test_cnn_tab(page):
    pick_sample(page, "Chelsea", "451×300 pixels")
    panel = open_tab(page, "CNN")
    choose(page, "Network", "MobileNetV2", panel)
    click(page, "Classify the photo")
    prediction = page.locator("#cnn-prediction")
    expect(prediction).to_contain_text("cat")  # real ImageNet weights: tabby / tiger / Egyptian
    click(page, "Show feature maps")
    width, height = image_size(page.locator("#cnn-grid"))
    assert width > 100 and height > 100
    no_error_toasts(page)
    shoot(page, panel, "3-cnn")


def test_vit_tab(page):
    pick_sample(page, "Astronaut", "512×512 pixels")
    panel = open_tab(page, "ViT")
    click(page, "Look inside")
    expect(panel.locator("#vit-grid img")).to_be_visible()
    no_error_toasts(page)
    set_number(panel, "layer", 1)
    click(page, "Show attention")
    heat = block(panel, "Attention of the query")
    width, height = image_size(heat)
    assert width >= 64 and height > width  # the square model input, its colour bar under it
    expect(panel).to_contain_text("(layer 1,")
    no_error_toasts(page)
    shoot(page, panel, "4-vit")


def test_contrastive_tab(page):
    panel = open_tab(page, "Contrastive")
    set_number(panel, "batch size N", 16)
    set_number(panel, "steps", 3000)
    set_number(panel, "update the views every … steps", 1)
    page.locator("#contrastive-train").click()
    matrix = page.locator("#contrastive-matrix img")
    matrix.wait_for()
    changed = "([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0"
    for _ in range(2):  # the matrix is redrawn while the model trains
        source = matrix.get_attribute("src")
        page.wait_for_function(changed, arg=[matrix.element_handle(), source])
    status = page.locator("#contrastive-status")
    expect(status).to_contain_text("Step")
    page.locator("#contrastive-stop").click()
    expect(status).to_contain_text("Paused: press Train to go on")
    wait_idle(page)  # the run's progress tracker is gone: it stopped
    paused = status.inner_text()
    assert "Finished" not in paused
    page.wait_for_timeout(1500)
    assert status.inner_text() == paused  # and stays stopped
    no_error_toasts(page)
    badges = panel.locator("[data-testid=status-tracker] .error")
    assert badges.count() == 0, "a stopped run is not an error"
    shoot(page, panel, "4b-contrastive")
    # Train resumes the paused model; Reset in the middle of the run ends it, also without errors.
    page.locator("#contrastive-train").click()
    expect(status).not_to_contain_text("Paused")
    page.locator("#contrastive-reset").click()
    expect(status).to_contain_text("The run was reset")
    wait_idle(page)
    page.wait_for_timeout(1500)
    expect(status).to_contain_text("The run was reset")  # no snapshot on its way came after it
    assert badges.count() == 0, "a reset run is not an error"
    no_error_toasts(page)


def test_clip_tab(page):
    pick_sample(page, "Coffee", "600×400 pixels")
    panel = open_tab(page, "CLIP")
    page.locator("#clip-labels textarea").fill("a cup of coffee\na cat\na rocket")
    page.locator("#clip-classify").click()
    wait_idle(page)
    bars = page.locator("#clip-bars")
    expect(bars).to_contain_text("a cup of coffee")
    expect(bars).to_contain_text("%")
    page.locator("#clip-compare").click()
    wait_idle(page)
    width, height = image_size(page.locator("#clip-sim-heatmap"))
    assert width > 200 and height > 200
    no_error_toasts(page)
    shoot(page, panel, "5-clip")


def test_captioning_tab(page):
    pick_sample(page, "Rocket", "640×427 pixels")
    panel = open_tab(page, "Captioning")
    set_number(panel, "maximum length (tokens)", 8)
    click(page, "Caption the photo")
    caption = page.locator("#caption-text textarea")
    expect(caption).not_to_have_value("")
    assert len(caption.input_value().split()) >= 1
    no_error_toasts(page)
    shoot(page, panel, "6-captioning")


def test_vqa_tab(page, lab_app):
    pick_sample(page, "Grace Hopper", "512×600 pixels")
    panel = open_tab(page, "VQA")
    page.locator("#vqa-questions textarea").fill("What is she wearing?\nIs she smiling?")
    click(page, "Answer")
    answers = page.locator("#vqa-answers")
    expect(answers).to_contain_text("Is she smiling?")
    expect(answers).to_contain_text(re.compile(r"\d\.\d{3}|\d+(\.\d+)?\s?%"))  # a score per answer
    no_error_toasts(page)
    shoot(page, panel, "7-vqa")
    # On screen, the tab answers a new photo by itself, with the questions as they stand.
    page.locator("#vqa-questions textarea").fill("What colour is the flag?")
    pick_sample(page, "Astronaut", "512×512 pixels")
    expect(answers).to_contain_text("What colour is the flag?")
    no_error_toasts(page)
    assert not page.errors, page.errors  # no JavaScript errors along the way
    assert_alive(lab_app.url)


def test_a_tab_that_cannot_answer_says_why_in_place_until_its_next_action(page, lab_app):
    missing = "AlexNet (2012, 8 layers) (alexnet) is not on this machine"
    pick_sample(page, "Chelsea", "451×300 pixels")
    panel = open_tab(page, "CNN")
    note = panel.locator(".block.lab-error-note")
    expect(note).to_be_hidden()  # nothing to say yet
    choose(page, "Network", "AlexNet", panel)  # the default; its weights are not in the tests
    click(page, "Classify the photo")
    toast = page.locator("[data-testid=toast-body]", has_text=missing)
    expect(toast).to_be_visible()
    expect(note).to_contain_text(missing)
    expect(toast).to_be_hidden(timeout=30_000)  # the toast fades by itself after 10 s…
    expect(note).to_be_visible()  # …the sentence stays in the tab, with the way to get the model
    expect(note).to_contain_text("python -m vlmlab.models download alexnet")
    assert note.evaluate("e => e.getBoundingClientRect().height") > 20
    shoot(page, panel, "3-cnn-missing-model")
    # The next action clears it; another tab's note never showed it.
    choose(page, "Network", "MobileNetV2", panel)
    click(page, "Classify the photo")
    expect(page.locator("#cnn-prediction")).to_contain_text("cat")
    expect(note).to_be_hidden()
    shown = page.locator(".block.lab-error-note.lab-error-shown")
    assert shown.count() == 0, [
        (e.evaluate("e => e.closest('[id^=tab-]')?.id"), e.inner_text()) for e in shown.all()
    ]
    assert not page.errors, page.errors
    assert_alive(lab_app.url)
