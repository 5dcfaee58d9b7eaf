"""One public vocabulary: the endpoints' parameters carry the engine's names, `view_api()` says
what each accepts, and the README's API section is what `view_api()` says (demo/api_doc.py)."""

from __future__ import annotations

import numpy as np
import pytest
from lab_api import endpoints, image_file, predict
from PIL import Image

from demo import api_doc
from vlmlab import cnn
from vlmlab.cnn import render as cnn_render
from vlmlab.cnn import gradcam
from vlmlab.images import sample_files

REAL = "mobilenet_v2"  # the test world's CNN with real weights
# Names the app used before it spoke the engine's vocabulary: none may come back.
OLD_NAMES = {"path", "name", "heat", "nucleus", "beam_count", "max_tokens", "how", "start",
             "layer_value", "head_value", "query_value", "asked", "k", "text_box", "cnn",
             "filters_text", "bias_text"}  # fmt: skip


@pytest.fixture(scope="module")
def api(lab_app):
    return endpoints(lab_app.client)


def names(api, endpoint: str) -> list[str]:
    return [p["parameter_name"] for p in api[endpoint]["parameters"]]


def test_the_readme_api_section_is_what_view_api_says(api):
    readme = api_doc.README.read_text(encoding="utf-8")
    assert api_doc.section(readme) == api_doc.markdown(api), (
        "README.md's API section is stale: run `python -m demo.api_doc`"
    )


def test_the_readme_section_changes_when_an_endpoint_does(api):
    first_only = {**api["/classify"], "parameters": api["/classify"]["parameters"][:1]}
    changed = {**api, "/classify": first_only}
    before, after = api_doc.markdown(api), api_doc.markdown(changed)
    classify = "#### `/classify`"
    assert "| `top_k` |" in before.split(classify)[1].split("####")[0]
    assert "| `top_k` |" not in after.split(classify)[1].split("####")[0]


def test_endpoints_speak_the_engines_vocabulary(api):
    assert names(api, "/caption") == [
        "photo", "model", "decoding", "num_beams", "temperature", "top_p", "max_new_tokens",
        "prompt",
    ]  # fmt: skip
    assert names(api, "/vit_attention") == ["photo", "model", "layer", "head", "query"]
    assert names(api, "/answer") == ["photo", "questions", "model", "top_k"]
    assert names(api, "/apply_kernel")[:2] == ["photo", "kernel"]
    assert names(api, "/conv_layer")[:3] == ["photo", "filters", "bias"]
    for endpoint, info in api.items():
        used = {p["parameter_name"] for p in info["parameters"]}
        assert not used & OLD_NAMES, (endpoint, used & OLD_NAMES)
        assert not any(n.startswith("param_") for n in used), (endpoint, used)
        files = [p["parameter_name"] for p in info["parameters"] if p["component"] == "File"]
        assert files[:1] in ([], ["photo"]), (endpoint, files)


def test_view_api_says_what_grad_cam_and_vit_heads_accept(api):
    target = next(p for p in api["/grad_cam"]["parameters"] if p["parameter_name"] == "target")
    kinds = {schema["type"] for schema in target["type"]["anyOf"]}
    assert kinds == {"integer", "string"} and "class name" in target["python_type"]["description"]
    head = next(p for p in api["/vit_attention"]["parameters"] if p["parameter_name"] == "head")
    assert {"integer", "string"} == {schema["type"] for schema in head["type"]["anyOf"]}
    assert "mean" in str(head["type"]) and "head number" in head["python_type"]["description"]


def test_grad_cam_takes_a_class_by_name_or_number(lab_app, chelsea):
    photo = sample_files()["chelsea"]
    index = cnn.categories(REAL).index("tabby")
    expected = np.asarray(cnn_render.draw_evidence(gradcam.grad_cam(chelsea, REAL, index)))
    for target in ("tabby", index, str(index)):
        picture, text = predict(lab_app.client, "/grad_cam", photo, model=REAL, target=target)
        assert f"**tabby** (class {index}" in text, (target, text)
        got = np.asarray(image_file(picture).convert("RGB"))
        assert got.shape == expected.shape, target
    assert gradcam.class_index(" 281 ", cnn.categories(REAL), np.zeros(1000)) == 281


def test_a_vit_head_may_be_sent_as_a_number(lab_app):
    photo = sample_files()["chelsea"]
    by_number = predict(lab_app.client, "/vit_attention", photo, layer=1, head=1)
    by_text = predict(lab_app.client, "/vit_attention", photo, layer=1, head="1")
    mean = predict(lab_app.client, "/vit_attention", photo, layer=1, head="mean")
    first = [np.asarray(Image.open(r[0]["value"] if isinstance(r[0], dict) else r[0])) for r in
             (by_number, by_text, mean)]  # fmt: skip
    assert np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])


def test_every_event_that_can_load_a_model_waits_for_the_model_slot(lab_app):
    """Views that re-draw from a cached forward still load and run the model on a cache miss."""
    from demo import cnn_tab, vit_tab  # noqa: F401 - the handlers named below live there

    may_load = {"look_inside", "vit_attention", "typed_attention", "pick_patch", "show_patch",
                "send_filter", "show_learned_filters", "pick_filter", "show_evidence"}  # fmt: skip
    found = {}
    for fn in lab_app.demo.fns.values():
        name = getattr(fn.fn, "__name__", "")
        if name in may_load:
            found.setdefault(name, set()).add(fn.concurrency_id)
    assert set(found) == may_load, may_load - set(found)
    assert all(ids == {"model"} for ids in found.values()), found


def test_the_benchmarks_call_the_endpoints_by_their_names(api):
    """`make bench` times each endpoint with some inputs changed: by the names the app has."""
    from bench.endpoints import ENDPOINTS

    for endpoint, (inputs, _) in ENDPOINTS.items():
        assert set(inputs) <= set(names(api, f"/{endpoint}")), (endpoint, sorted(inputs))
