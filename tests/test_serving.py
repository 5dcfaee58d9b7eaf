"""Serving safely: what the launched lab lets a stranger on its public URL read, fetch or break.

Everything goes through HTTP or gradio_client against the app launched once for the session
(`lab_app`); each case checks the answer a user gets and that the lab still answers GET /.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import gradio as gr
import httpx
import pytest
import torch
from gradio import processing_utils
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from lab_api import (
    PHOTO_ENDPOINTS,
    assert_alive,
    assert_clear,
    call_raw,
    endpoints,
    loopback_recorder,
    noise_png,
    photo_endpoints,
    predict,
    submit,
)

from demo import MAX_QUEUE, cache_writes
from demo.common import FAULT
from vlmlab.images import sample_files

ROOT = Path(__file__).resolve().parents[1]
MODEL_ENDPOINTS = tuple(name for name in PHOTO_ENDPOINTS if name != "/apply_kernel")


def file_route(url: str, path: str) -> httpx.Response:
    return httpx.get(f"{url}gradio_api/file={path}", timeout=5)


# ---------------------------------------------------------------------------------------------
# Files and endpoints


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../app.py",
        "..%2fapp.py",
        "%2e%2e/%2e%2e/etc/passwd",
        str(ROOT / "app.py"),
        "app.py",
        ".env",
        str(ROOT / ".env"),
        "~/.ssh/id_rsa",
    ],
)
def test_file_route_refuses_files_outside_the_upload_cache(lab_app, path):
    response = file_route(lab_app.url, path)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert "root:" not in response.text and "import" not in response.text
    assert_alive(lab_app.url)


def test_file_route_refuses_the_model_caches(lab_app, hf_home, torch_home):
    config = next(hf_home.glob("hub/models--*/snapshots/*/config.json"))
    weights = next(torch_home.glob("hub/checkpoints/*.pth"))
    for path in (hf_home, config, torch_home, weights):
        response = file_route(lab_app.url, quote(str(path)))
        assert response.status_code in (403, 404), (path, response.status_code)
    assert_alive(lab_app.url)


def test_file_route_does_not_fetch_urls_for_anyone(lab_app):
    with loopback_recorder() as server:
        for target in (f"{server.url}/cat.png", f"{server.url}/admin"):
            response = file_route(lab_app.url, target)
            assert response.status_code == 403
        assert server.hits == []
    assert_alive(lab_app.url)


def test_a_photo_given_as_a_url_is_never_fetched(lab_app):
    """Each photo endpoint, sent a FileData whose path or url is a URL, fetches nothing."""
    with loopback_recorder() as server:
        for api_name in photo_endpoints(lab_app.client):
            for payload in (
                {"path": f"{server.url}/cat.png", "meta": {"_type": "gradio.FileData"}},
                {
                    "path": "cat.png",
                    "url": f"{server.url}/cat.png",
                    "meta": {"_type": "gradio.FileData"},
                },
            ):
                event, answer = call_raw(lab_app.url, lab_app.client, api_name, payload)
                assert event == "error", (api_name, answer)
                assert "Traceback" not in json.dumps(answer)
            with pytest.raises(AppError):  # and gradio_client does not fetch it either
                predict(lab_app.client, api_name, handle_file(f"{server.url}/photo.png"))
        assert server.hits == [], f"the lab fetched {server.hits}"
    assert_alive(lab_app.url)


def test_a_url_typed_as_text_is_never_fetched(lab_app):
    client = lab_app.client
    with loopback_recorder() as server:
        link = f"{server.url}/look-here.png"
        for api_name, info in endpoints(client).items():
            texts = [
                p["parameter_name"] for p in info["parameters"] if p.get("component") == "Textbox"
            ]
            for name in texts:
                try:
                    predict(client, api_name, **{name: link})
                except AppError as error:
                    assert_clear(error.message)
        assert server.hits == [], f"the lab fetched {server.hits}"
    assert_alive(lab_app.url)


def test_a_server_path_as_the_photo_is_refused(lab_app, tmp_path):
    """The API cannot make the lab read its own files by naming them as the photo: only files
    uploaded to Gradio's cache are accepted (sent over bare HTTP: gradio_client would upload a
    local path itself)."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(noise_png(1))
    paths = ("/etc/passwd", str(ROOT / "app.py"), str(secret), str(sample_files()["coffee"]))
    for api_name in photo_endpoints(lab_app.client):
        for path in paths:
            payload = {"path": path, "meta": {"_type": "gradio.FileData"}}
            event, answer = call_raw(lab_app.url, lab_app.client, api_name, payload)
            assert event == "error", (api_name, path, str(answer)[:200])
            assert "root:" not in json.dumps(answer) and "Traceback" not in json.dumps(answer)
    # The same request with the default photo (in the upload cache) is served: the refusals
    # above were about the path, not the request.
    event, answer = call_raw(lab_app.url, lab_app.client, "/apply_kernel")
    assert event == "complete", answer
    assert_alive(lab_app.url)


def test_monitoring_is_not_public(lab_app):
    for path in ("monitoring", "monitoring/summary", "monitoring/0123456789abcdef"):
        response = httpx.get(f"{lab_app.url}{path}", timeout=5, follow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    config = httpx.get(f"{lab_app.url}config", timeout=5).text
    assert "analytics_key" not in config
    assert lab_app.demo.enable_monitoring is False
    assert_alive(lab_app.url)


def test_no_mcp_server_is_exposed(lab_app):
    for path in ("gradio_api/mcp/sse", "gradio_api/mcp/schema"):
        assert httpx.get(f"{lab_app.url}{path}", timeout=5).status_code == 404


def test_share_is_off_by_default_and_launch_is_bounded(lab_app, monkeypatch):
    demo = lab_app.demo
    assert demo.share is False and demo.share_url is None
    assert demo.max_file_size == 20 * 1024 * 1024
    assert demo.state_session_capacity <= 1000  # ~0.5 MB each: memory bounded however many come
    assert demo.delete_cache and demo.delete_cache[1] >= 3600  # old uploads cleaned, not fresh ones
    assert demo._queue.max_size == MAX_QUEUE
    assert demo.allowed_paths == []
    assert demo.show_error is False
    model_fns = [fn for fn in demo.fns.values() if fn.concurrency_id == "model"]
    assert model_fns and all(fn.concurrency_limit == 1 for fn in model_fns)
    unbounded = [fn.name for fn in demo.fns.values() if fn.concurrency_limit is None]
    assert not unbounded, f"events without a concurrency limit: {unbounded}"

    # `python app.py` with no flags: share stays off, the lab listens on loopback only.
    import app

    launched = {}
    monkeypatch.setattr(app.demo, "launch", lambda **options: launched.update(options))
    app.main([])
    assert launched["share"] is False and launched["server_name"] == "127.0.0.1"
    assert launched["max_file_size"] and launched["allowed_paths"] == []
    if sys.platform.startswith("linux"):  # free memory goes back to the system (see bench memory)
        assert "malloc-trim" in {thread.name for thread in threading.enumerate()}


def test_a_picture_shown_to_many_is_never_rewritten_while_a_browser_reads_it(lab_app):
    """Many students on one sample get the same picture, under one name in Gradio's cache, and
    a streamed caption sends its word maps anew with each word: the file a browser is reading is
    never written again in place (demo/cache_writes.py), so it is always whole."""
    assert processing_utils.save_pil_to_cache is cache_writes.save_pil_to_cache  # the app's
    picture = Image.effect_noise((120, 90), 64).convert("RGB")
    first = Path(gr.Image().postprocess(picture).path)
    whole = first.read_bytes()

    # While a browser reads the copy, the same picture comes again: that copy is kept as it is.
    first.write_bytes(b"read by a browser")
    assert Path(gr.Image().postprocess(picture).path) == first
    assert first.read_bytes() == b"read by a browser"
    first.write_bytes(whole)  # the copy as first written

    # Students' requests and a browser at once: every read, while 60 requests are served, is whole.
    stop, served, reads = threading.Event(), [], []

    def student() -> None:
        while not stop.is_set():
            gr.Gallery().postprocess([(picture, "bird"), (picture, "on")])
            served.append(1)  # (list.append is atomic)

    students = [threading.Thread(target=student) for _ in range(3)]
    for thread in students:
        thread.start()
    try:
        reads.append(first.read_bytes())
        while len(served) < 60 and any(t.is_alive() for t in students):
            reads.append(first.read_bytes())
    finally:
        stop.set()
        for thread in students:
            thread.join()
    assert len(served) >= 60  # (no student stopped on an error)
    assert reads and all(read == whole for read in reads), {len(read) for read in reads}
    assert not list(first.parent.glob(".image.*"))  # no half-written copy left behind


def test_an_upload_over_the_size_limit_is_refused_before_the_lab_sees_it(lab_app, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(noise_png(2) + os.urandom(21 * 1024 * 1024))  # valid PNG, trailing bytes
    with big.open("rb") as f:
        response = httpx.post(
            f"{lab_app.url}gradio_api/upload",
            files={"files": ("huge.png", f, "image/png")},
            timeout=60,
        )
    assert response.status_code == 413
    assert "maximum allowed size" in response.text and "Traceback" not in response.text

    # Through gradio_client, the same upload fails before any handler runs.
    with pytest.raises(Exception) as refused:
        predict(lab_app.client, photo_endpoints(lab_app.client)[0], big)
    assert "Traceback" not in str(refused.value)
    assert_alive(lab_app.url)


# ---------------------------------------------------------------------------------------------
# Failures: a model that raises mid-forward


def _raise_in_every_forward(monkeypatch, error: BaseException) -> None:
    def broken(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(torch.nn.Module, "__call__", broken)


@pytest.mark.parametrize("api_name", MODEL_ENDPOINTS)
def test_a_failing_model_gives_a_clear_message_and_the_next_request_works(
    lab_app, api_name, tmp_path, monkeypatch, caplog
):
    if api_name not in endpoints(lab_app.client):
        pytest.fail(f"{api_name} is not served yet")
    photo = tmp_path / "fresh.png"  # unseen pixels: no per-image cache can answer
    photo.write_bytes(noise_png(int.from_bytes(os.urandom(4), "little")))

    with monkeypatch.context() as patch:
        _raise_in_every_forward(patch, RuntimeError("a kernel crashed in the model"))
        with caplog.at_level(logging.ERROR, logger="vlmlab"), pytest.raises(AppError) as crashed:
            predict(lab_app.client, api_name, photo)
        assert assert_clear(crashed.value.message, fault_ok=True) == FAULT
        assert "a kernel crashed in the model" in caplog.text  # logged for the lecturer

        _raise_in_every_forward(patch, torch.cuda.OutOfMemoryError("CUDA out of memory."))
        with pytest.raises(AppError) as oom:
            predict(lab_app.client, api_name, photo)
        assert "ran out of memory" in assert_clear(oom.value.message)
    assert_alive(lab_app.url)

    result = predict(lab_app.client, api_name, photo)  # the model works again, same photo
    assert result is not None
    assert_alive(lab_app.url)


def test_the_queue_is_freed_after_failures(lab_app, tmp_path, monkeypatch):
    """Several crashed model events in a row do not leave the model slot taken."""
    api_name = next((n for n in MODEL_ENDPOINTS if n in endpoints(lab_app.client)), None)
    if api_name is None:
        pytest.fail("no model endpoint is served yet")
    photo = tmp_path / "fresh.png"
    photo.write_bytes(noise_png(int.from_bytes(os.urandom(4), "little")))
    with monkeypatch.context() as patch:
        _raise_in_every_forward(patch, RuntimeError("boom"))
        jobs = [submit(lab_app.client, api_name, photo) for _ in range(4)]
        for job in jobs:
            with pytest.raises(AppError):
                job.result(timeout=60)
    assert predict(lab_app.client, api_name, photo) is not None
    assert_alive(lab_app.url)


def test_every_model_load_in_the_app_waits_for_the_model_slot(lab_app, monkeypatch):
    """Two visitors at once and a third request, with room for two models: each load runs in an
    event of the model slot (never the light pool, never two at once), the least recently used
    model makes room, and the ViT tab pointed at CLIP shares the CLIP tab's copy."""
    from gradio.context import LocalContext

    from vlmlab import clip, models, vit
    from vlmlab.cache import LRUCache

    clip_id, laion_id, vit_id = (
        "openai/clip-vit-base-patch32", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "google/vit-base-patch16-224",
    )  # fmt: skip
    monkeypatch.setattr(models, "_loaded", {})
    monkeypatch.setattr(models, "_max_loaded", 2)
    monkeypatch.setattr(vit, "_inspections", LRUCache(maxsize=8))  # every view misses its cache
    clip.clear_caches()
    queue = lab_app.demo._queue
    slots, running, overlaps = [], [], []
    load = models._load

    def slots_now() -> set:
        """The slot of the event this load runs in; Gradio names no event of a batch (zero-shot),
        so for one of those, the slots of every batch running now."""
        event_id = LocalContext.event_id.get(None)
        if event_id is not None:
            event = queue.event_ids_to_events.get(event_id)
            return {event.fn.concurrency_id if event else None}
        return {e.fn.concurrency_id for job in queue.active_jobs for e in job or () if e.fn.batch}

    def watched(spec, *args, **kwargs):
        slots.append((spec.name, slots_now()))
        running.append(spec.name)
        overlaps.append(len(running))
        try:
            return load(spec, *args, **kwargs)
        finally:
            running.remove(spec.name)

    monkeypatch.setattr(models, "_load", watched)
    photo = sample_files()["chelsea"]
    errors = []

    def visitor(calls):
        try:
            for api_name, values in calls:
                assert predict(lab_app.client, api_name, photo, **values) is not None
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    as_vit = {"model": clip_id, "layer": 1, "head": "mean", "query": "CLS"}
    visitors = [
        [("/vit_attention", as_vit), ("/zero_shot", {"labels": "cat, dog", "model": clip_id})],
        [("/zero_shot", {"labels": "cat, cup", "model": laion_id})],
    ]
    threads = [threading.Thread(target=visitor, args=(calls,)) for calls in visitors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(name for name, _ in slots) == sorted([clip_id, laion_id])  # CLIP once, both tabs
    visitor([("/vit_attention", {**as_vit, "model": vit_id})])  # the third: over the budget
    assert not errors, errors
    assert [name for name, _ in slots[2:]] == [vit_id]
    assert all(slot == {"model"} for _, slot in slots), slots
    assert max(overlaps) == 1 and len(models.loaded_models()) == 2
    assert models.loaded_models()[-1].spec.name == vit_id


def test_an_upload_removed_by_the_cache_cleanup_is_explained(lab_app, tmp_path):
    """A photo uploaded hours ago and since deleted by `delete_cache`: the student is told to
    pick it again (sent over bare HTTP, as a browser holding the old path would)."""
    photo = tmp_path / "old.png"
    photo.write_bytes(noise_png(3))
    with photo.open("rb") as f:
        uploaded = httpx.post(
            f"{lab_app.url}gradio_api/upload", files={"files": ("old.png", f, "image/png")}
        ).json()[0]
    Path(uploaded).unlink()
    payload = {"path": uploaded, "meta": {"_type": "gradio.FileData"}}
    event, answer = call_raw(lab_app.url, lab_app.client, "/apply_kernel", payload)
    assert event == "error", answer
    message = answer.get("error") if isinstance(answer, dict) else answer
    assert "no longer on the server" in assert_clear(message), message
    assert_alive(lab_app.url)
