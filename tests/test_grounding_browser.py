"""Grounding as a person sees it in Chromium: a relevance map per CLIP label, a pair's map from a
click on the similarity matrix, and a strip of word maps under a streamed caption (the page and
helpers of tests/test_browser.py)."""

from __future__ import annotations

import pytest
from test_browser import (  # noqa: F401 - page is a fixture
    click,
    expect,
    image_size,
    no_error_toasts,
    open_tab,
    page,
    pick_sample,
    set_number,
    shoot,
    wait_idle,
)

pytestmark = pytest.mark.browser


def test_clip_shows_a_relevance_map_per_label_and_a_clicked_pairs_map(page):
    pick_sample(page, "Coffee", "600×400 pixels")
    panel = open_tab(page, "CLIP")
    page.locator("#clip-labels textarea").fill("a cup of coffee\na cat\na rocket")
    page.locator("#clip-classify").click()
    wait_idle(page)
    maps = page.locator("#clip-relevance button.thumbnail-lg")
    expect(maps).to_have_count(3)
    captions = page.locator("#clip-relevance .caption-label").all_inner_texts()
    assert sorted(c.split(" (logit")[0].strip() for c in captions) == [
        "a cat", "a cup of coffee", "a rocket",
    ]  # fmt: skip
    expect(page.locator("#clip-relevance-notes")).to_contain_text("not an explanation")
    shoot(page, panel, "5-clip-relevance")

    page.locator("#clip-compare").click()
    wait_idle(page)
    matrix = page.locator("#clip-sim-heatmap img").first
    width, height = image_size(page.locator("#clip-sim-heatmap"))
    box = matrix.bounding_box()
    # the middle of the picture lies inside the matrix's cells
    matrix.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    wait_idle(page)
    expect(page.locator("#clip-sim-pair-notes")).to_contain_text("with T")
    pair_width, _ = image_size(page.locator("#clip-sim-pair"))
    assert pair_width > 100 and width > 200 and height > 200
    no_error_toasts(page)


def test_a_streamed_caption_has_a_strip_of_word_maps_under_it(page):
    pick_sample(page, "Rocket", "640×427 pixels")
    panel = open_tab(page, "Captioning")
    set_number(panel, "maximum length (tokens)", 8)
    click(page, "Caption the photo")
    expect(page.locator("#caption-text textarea")).not_to_have_value("")
    tokens = page.locator("#caption-tokens span[title^='p = ']")
    ends = page.locator("#caption-tokens span[title^='p = ']", has_text="⏎ end").count()
    words = tokens.count() - ends
    assert words >= 1
    strip = page.locator("#caption-maps button.thumbnail-lg")
    expect(strip).to_have_count(words)  # one map per word, in the strip under the words
    expect(page.locator("#caption-maps-notes")).to_contain_text("cross-attention")
    strip.first.click()  # a word, large
    expect(page.locator("#caption-maps img").first).to_be_visible()
    no_error_toasts(page)
    shoot(page, panel, "6-captioning-maps")
