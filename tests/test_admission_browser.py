"""What a waiting or refused student sees in a real browser (Debian's Chromium, headless).

The model line is held (`lab_load.held_model_line`), so the page's caption waits in it for as
long as the test needs: the student sees their place and expected wait; a second request past the
wait budget is refused at once with the sentence that says when to try again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lab_api import assert_alive
from lab_load import held_model_line

from demo.admission import admission_of

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
WAIT = 90_000  # ms: the first model load on a loaded 2-core machine


def test_a_waiting_student_sees_their_place_and_a_refused_one_when_to_retry(
    lab_app, browser, monkeypatch
):
    from playwright.sync_api import expect

    # Playwright's assertions wait 5 s by default, its actions WAIT: both wait WAIT here.
    expect.set_options(timeout=WAIT)
    admission = admission_of(lab_app.demo)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT)
        page.goto(lab_app.url)
        page.locator("#photo-preview img").wait_for()
        with held_model_line(lab_app.demo) as (line, _):
            # Opening the tab captions the photo: the request joins the held line and waits.
            page.get_by_role("tab", name="Captioning").click()
            # Its place in the line, and its expected wait as "elapsed/expected s".
            place = page.get_by_text(re.compile(r"queue: \d+/\d+ \| [\d.]+/[\d.]+s"))
            expect(place.first).to_be_visible()
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "admission-waiting.png"))
            waiting = len(line.queue)
            # Another press, with a budget nothing can fit: refused at once, told when.
            monkeypatch.setattr(admission, "budget_s", 1e-6)
            page.get_by_role("button", name="Caption the photo").click()
            told = page.get_by_text("The lab is busy right now; please try again in about")
            expect(told.first).to_be_visible()
            page.wait_for_timeout(800)  # the toast's fade-in, for the picture only
            page.screenshot(path=str(SHOTS / "admission-refused.png"))
            assert len(line.queue) == waiting  # the refused press never joined
        monkeypatch.undo()
        # The line runs again: the waiting caption arrives.
        expect(page.locator("#caption-text textarea")).not_to_have_value("")
    finally:
        context.close()
    assert_alive(lab_app.url)
