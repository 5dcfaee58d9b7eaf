"""Widget links: `widget.link()` gives the app's query-string link; `Widget.from_link(link)`
builds the widget in that state (widgets/links.py over vlmlab.links)."""

from __future__ import annotations

import pytest

from vlmlab import links
from widgets.cnn import FeatureMapBrowser
from widgets.contrastive import ContrastivePlayground
from widgets.kernels import KernelExplorer
from widgets.pixels import PixelInspector


def test_a_pixel_inspector_round_trips_through_its_link():
    widget = PixelInspector.from_link(
        "http://lab/?tab=pixels&sample=coffee&top=40&size=6&space=Lab"
    )
    assert (widget.top.value, widget.size.value, widget.space.value) == (40, 6, "Lab")
    assert widget.image.size == (600, 400)  # the coffee sample
    widget.left.value = 33
    link = widget.link("http://lab/")
    assert link.startswith("http://lab/?tab=pixels&sample=coffee&")
    again = PixelInspector.from_link(link)
    assert (again.top.value, again.left.value, again.size.value) == (40, 33, 6)
    assert again.facts.value == widget.facts.value  # the same numbers shown


def test_a_kernel_explorer_link_carries_the_kernel_and_settings():
    widget = KernelExplorer.from_link(
        "?tab=convolution&sample=camera&kernel=-1%200%201%0A-2%200%202%0A-1%200%201"
        "&padding=zero&stride=2&grayscale=1&display=signed"
    )
    assert widget.padding.value == "zero" and widget.stride.value == 2
    assert widget.grayscale.value is True and widget.mode.value == "signed"
    assert widget.text.value.split() == "-1 0 1 -2 0 2 -1 0 1".split()
    query = links.decode(widget.link())
    assert query.sample == "camera" and query.settings.stride == 2 and query.settings.grayscale


def test_a_widget_on_your_own_image_links_no_photo(chelsea):
    link = KernelExplorer(chelsea, "sharpen").link()
    assert "sample=" not in link and "tab=convolution" in link


def test_bad_links_give_defaults_and_notes_and_the_wrong_tab_is_refused():
    widget = PixelInspector.from_link("?tab=pixels&size=900&space=%3Cscript%3E&zzz=1")
    assert widget.size.value == 10 and widget.space.value == "HSV"
    assert len(widget.link_notes) == 3
    with pytest.raises(links.LinkError, match="pixels tab"):
        PixelInspector.from_link("?tab=cnn")


def test_the_contrastive_playground_and_a_cnn_browser_from_links():
    playground = ContrastivePlayground.from_link("?tab=contrastive&steps=50&batch_size=16&lr=0.01")
    assert (playground.steps.value, playground.batch_size.value) == (50, 16)
    assert playground.lr.value == pytest.approx(0.01)
    assert "steps=50" in playground.link() and "sample" not in playground.link()

    browser = FeatureMapBrowser.from_link(
        "?tab=cnn&sample=coffee&model=mobilenet_v2&layer=block2&channel=3"
    )
    assert (browser.layer.value, browser.channel.value) == ("block2", 3)
    back = links.decode(browser.link())
    assert (back.settings.model, back.settings.layer, back.settings.channel) == (
        "mobilenet_v2", "block2", 3,
    )


@pytest.mark.parametrize(
    "kind, link",
    [
        ("clip.ZeroShotClassifier", "?tab=clip&sample=coffee&labels=cup%0Acat"
                                    "&templates=a%20sketch%20of%20a%20%7B%7D"),
        ("vqa.QuestionBox", "?tab=vqa&sample=coffee&question=Is%20it%20hot%3F&top_k=3"),
        ("captioning.Captioner", "?tab=captioning&sample=rocket&decoding=sampling"
                                 "&temperature=0.7&max_new_tokens=5"),
        ("vit.AttentionBrowser", "?tab=vit&sample=astronaut&layer=1&head=1&query=3"),
    ],
)
def test_model_widgets_give_back_the_link_they_were_built_from(kind, link):
    import importlib

    module, name = kind.split(".")
    widget = getattr(importlib.import_module(f"widgets.{module}"), name).from_link(link)
    asked, given = links.decode(link), links.decode(widget.link())
    assert widget.link_notes == () and given.sample == asked.sample
    for field, value in vars(asked.settings).items():
        if value is not None:
            assert getattr(given.settings, field) == value, field
