"""Links that restore a view and the lecture path, in Chromium: a tab set up by hand, its link
copied and opened in a fresh browser context shows the same controls and the same result; the
lecture path walks forward and back onto the right tabs; bad links load with a note."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from test_browser import ARGS, CHROMIUM, WAIT, choose, expect, set_number, wait_idle

from vlmlab import lecture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def fresh(browser):
    """A new browser context per page opened: nothing shared but the server."""
    contexts = []

    def open_page(url: str):
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
        )
        context.set_default_timeout(WAIT)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(url)
        page.locator("#photo-preview img").wait_for()
        wait_idle(page)
        return page

    yield open_page
    for context in contexts:
        context.close()


DIGEST = """async (img) => {
  if (!img.complete) await new Promise(r => img.addEventListener('load', r, {once: true}));
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 97 == 0));
}"""


def digest(locator) -> str:
    """A hash of the pixels of the first image under `locator` (what a person sees)."""
    img = locator.locator("img").first
    img.wait_for()
    values = img.evaluate(DIGEST)
    return hashlib.sha1(bytes(values)).hexdigest()


def value_of(page, selector: str) -> str:
    field = page.locator(f"{selector} textarea, {selector} input").first
    return field.input_value()


def copy_link(page, tab: str) -> str:
    page.locator(f"#copy-link-{tab}").click()
    box = page.locator(f"#link-{tab} textarea, #link-{tab} input").first
    expect(box).to_have_value(__import__("re").compile(r"^http.*\?tab=" + tab))
    url = box.input_value()
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    return url


def test_pixels_and_convolution_links_restore_the_view(lab_app, fresh):
    page = fresh(lab_app.url + "?tab=pixels&sample=coffee&size=6")
    panel = page.locator("#tab-pixels")
    set_number(panel, "Region top (row)", 40)
    choose(page, "Colour space", "Lab") if False else panel.get_by_label("Lab", exact=True).check()
    wait_idle(page)
    url = copy_link(page, "pixels")
    query = parse_qs(urlsplit(url).query)
    assert query["sample"] == ["coffee"] and query["top"] == ["40"] and query["space"] == ["Lab"]
    facts = page.locator("#pixels-facts").inner_text()
    grids = digest(page.locator("#pixels-grids"))

    again = fresh(url)
    expect(again.locator("#pixels-facts")).to_have_text(facts)
    assert digest(again.locator("#pixels-grids")) == grids
    assert again.locator("#tab-pixels").get_by_label("Lab", exact=True).is_checked()

    page = fresh(lab_app.url + "?tab=convolution&sample=camera")
    expect(page.locator("#tab-convolution")).to_be_visible()
    conv = page.locator("#tab-convolution")
    conv.get_by_label("zero", exact=True).check()
    text = page.locator("#kernel-text textarea")
    text.fill("-1 0 1\n-2 0 2\n-1 0 1")
    text.blur()
    conv.get_by_label("Grayscale first (BT.601 luma)").check()
    wait_idle(page)
    result = digest(page.locator("#kernel-result"))
    url = copy_link(page, "convolution")
    again = fresh(url)
    expect(again.locator("#tab-convolution")).to_be_visible()
    expect(again.locator("#kernel-text textarea")).to_have_value("-1 0 1\n-2 0 2\n-1 0 1")
    assert again.locator("#tab-convolution").get_by_label("zero", exact=True).is_checked()
    assert digest(again.locator("#kernel-result")) == result
    assert not page.errors and not again.errors
