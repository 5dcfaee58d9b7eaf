"""The photo picker above the tabs, in Chromium: a new photo at any time without clearing first,
the choice kept across a reload in the same browser and in no other; and what a browser may ask
the server to reopen (only photos the lab gave out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_api import animated_gif, noise_png
from test_browser import WAIT, expect, image_size, no_error_toasts, wait_idle

from demo.photo import remembered_photo
from vlmlab.images import sample_files


def open_lab(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.locator("#photo-preview img").wait_for()
    wait_idle(page)
    return page


def upload(page, path: Path) -> None:
    """Drop a file on the upload zone, as it is: nothing cleared first."""
    page.locator("#photo-file input[type=file]").set_input_files(str(path))


@pytest.mark.browser
def test_a_new_photo_replaces_the_last_without_clearing_and_a_reload_keeps_it(
    browser, lab_app, tmp_path
):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(WAIT)
    try:
        page = open_lab(context, lab_app.url)
        notes = page.locator("#photo-notes")
        expect(notes).to_contain_text("451×300 pixels")  # the default sample

        first = tmp_path / "noise.png"
        first.write_bytes(noise_png(7, (90, 60)))
        upload(page, first)
        expect(notes).to_contain_text("90×60 pixels")
        assert image_size(page.locator("#photo-preview")) == (90, 60)
        # The zone is empty again at once, ready for the next photo: no × to press first.
        expect(page.locator("#photo-file input[type=file]")).to_be_attached()

        second = tmp_path / "blink.gif"
        second.write_bytes(animated_gif([(230, 30, 30), (30, 30, 230)]))
        upload(page, second)
        expect(notes).to_contain_text("48×32 pixels")
        expect(notes).to_contain_text("2 frames; the lab uses the first one")
        wait_idle(page)
        # The open tab (Pixels) follows, its region inside the small photo.
        expect(page.locator("#pixels-facts")).to_contain_text("(32, 48, 3)")
        no_error_toasts(page)

        # A reload in the same browser brings the upload back, not the default sample.
        page.reload()
        page.locator("#photo-preview img").wait_for()
        expect(notes).to_contain_text("48×32 pixels")
        wait_idle(page)
        expect(page.locator("#pixels-facts")).to_contain_text("(32, 48, 3)")
        assert image_size(page.locator("#photo-preview")) == (48, 32)

        # The samples stay one click away, and that choice is remembered too.
        page.locator('#photo-samples button:has(img[alt="Coffee"])').click()
        expect(notes).to_contain_text("600×400 pixels")
        wait_idle(page)
        page.reload()
        page.locator("#photo-preview img").wait_for()
        expect(notes).to_contain_text("600×400 pixels")
        no_error_toasts(page)

        # Another browser (its own storage) starts from the default photo, not this one's.
        upload(page, first)
        expect(notes).to_contain_text("90×60 pixels")
        wait_idle(page)
        other = browser.new_context(viewport={"width": 1280, "height": 720})
        other.set_default_timeout(WAIT)
        try:
            stranger = open_lab(other, lab_app.url)
            expect(stranger.locator("#photo-notes")).to_contain_text("451×300 pixels")
            stranger.wait_for_timeout(1000)
            expect(stranger.locator("#photo-notes")).to_contain_text("451×300 pixels")
        finally:
            other.close()
    finally:
        context.close()


def test_a_browser_can_only_bring_back_photos_the_lab_gave_out(tmp_path):
    from gradio.utils import get_upload_folder

    samples = sample_files()
    coffee = str(samples["coffee"])
    assert remembered_photo(coffee, samples.values()) == str(Path(coffee).resolve())
    upload_dir = Path(get_upload_folder()) / "vlmlab-test-remembered"
    upload_dir.mkdir(parents=True, exist_ok=True)
    cached = upload_dir / "photo.png"
    cached.write_bytes(noise_png(3))
    assert remembered_photo(str(cached), samples.values()) == str(cached.resolve())
    # Anything else a browser's storage may hold is ignored.
    outside = tmp_path / "secret.png"
    outside.write_bytes(noise_png(4))
    not_an_image = upload_dir / "notes.png"
    not_an_image.write_bytes(b"not a photo")
    escape = str(upload_dir / ".." / ".." / outside.name)
    for value in (None, "", 42, ["a"], "/etc/passwd", str(outside), escape, str(not_an_image)):
        assert remembered_photo(value, samples.values()) is None, value
    assert remembered_photo(str(upload_dir / "gone.png"), samples.values()) is None
