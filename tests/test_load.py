"""A lecture hall's load on the launched lab (loopback only, bounded in count and time).

`make test` runs the reduced form (30 students at once, 40 pressing "Classify" at once, a queue of
captions past a 2 s wait budget, a 100-request soak); `make stress` (`pytest -m stress`) runs the
full one (200 at once, 200 pressing "Classify", 200 "Caption" against a 2 s budget, a 500-request
soak). Figures, with the admission decisions (demo/admission.py), are written to
artifacts/load-<name>.json for the report.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import random
import threading
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
from gradio.route_utils import delete_files_created_by_app
from lab_api import TEST_CNN, assert_alive, encode, endpoints, noise_png, predict, rss, solid
from lab_load import Answer, Hall, Request, fetch_image, held_model_line, summary

from demo.admission import Admission, admission_of, expected_wait, refusal
from vlmlab import captioning, cnn
from vlmlab.images import read_image, sample_images
from vlmlab.models import loaded_models

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
IDENTITY = "0 0 0\n0 1 0\n0 0 0"
MB = 2**20
# 216 colours at least 40 apart in some channel: JPEG round trips cannot confuse two students.
COLOURS = [(20 + 40 * (i % 6), 20 + 40 * (i // 6 % 6), 20 + 40 * (i // 36 % 6)) for i in range(216)]


def report(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"load-{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{name}: {json.dumps(figures)}")


# ---------------------------------------------------------------------------------------------
# Many students at once: each gets their own answer, or is told the lab is busy


def kernel_student(i: int) -> Request:
    """Sends a solid colour through the identity kernel: the answer must be that colour."""
    colour = COLOURS[i % len(COLOURS)]

    async def check(outputs, http) -> str:
        pixels = await fetch_image(http, outputs[0])
        got = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
        ok = np.all(np.abs(got - colour) <= 12)
        return "" if ok else f"sent {colour}, got {tuple(got)}"

    values = {
        "text": IDENTITY,
        "mode": "clip",
        "grayscale": False,
        "flip": False,
        "normalise": False,
    }
    return Request("/apply_kernel", encode(solid(colour, (40, 30)), "PNG"), values, check)


def zero_shot_student(i: int) -> Request:
    """Sends their own labels (batched with others): the answer must rank exactly those."""
    mine = {f"student {i} apple", f"student {i} pear", f"student {i} kite"}

    async def check(outputs, http) -> str:
        got = {row["label"] for row in outputs[0].get("confidences") or []}
        return "" if got == mine else f"sent {sorted(mine)}, got {sorted(got)}"

    return Request("/zero_shot", noise_png(1000 + i), {"labels": "\n".join(sorted(mine))}, check)


def classify_student(i: int, photo: bytes, expected: dict) -> Request:
    """Sends a photo whose answer alone is known: batched with others, it must not change."""

    async def check(outputs, http) -> str:
        got = {row["label"]: row["confidence"] for row in outputs[0]["confidences"]}
        top = expected["label"]
        if outputs[0]["label"] != top or abs(got.get(top, -1) - expected["p"]) > 2e-3:
            return f"expected {top} ({expected['p']:.3f}), got {outputs[0]['label']}"
        return ""

    return Request("/classify", photo, {}, check)


def broken_student(i: int) -> Request:
    """Sends a text file as a photo to a batched endpoint: told so, and nobody else is hurt.

    Batched with others, the reason is this student's label; alone in a batch, it is a gr.Error.
    """

    async def check(outputs, http) -> str:
        label = str(outputs[0].get("label", ""))
        return "" if label.startswith("⚠️") and "not an image" in label else f"got {label!r}"

    return Request(
        "/classify", b"not a photo at all\n", {}, check, name="notes.png", refusal="not an image"
    )


def classify_references(lab_app, count: int, tmp_path) -> list[tuple[bytes, dict]]:
    """Photos with a clear top class, classified one at a time first."""
    found = []
    for seed in range(count * 3):
        photo = noise_png(5000 + seed, size=(32, 32))
        path = tmp_path / f"ref-{seed}.png"
        path.write_bytes(photo)
        result = predict(lab_app.client, "/classify", path)
        p = sorted((row["confidence"] for row in result["confidences"]), reverse=True)
        if len(p) > 1 and p[0] - p[1] > 0.01:
            found.append((photo, {"label": result["label"], "p": p[0]}))
        if len(found) == count:
            break
    assert len(found) == count, "not enough photos with a clear top class"
    return found


def crowd(lab_app, students: int, tmp_path) -> tuple[list[Answer], dict]:
    references = classify_references(lab_app, max(2, students // 10), tmp_path)
    requests = []
    for i in range(students):
        if i % 25 == 24:
            requests.append(broken_student(i))
        elif i % 5 == 3:
            requests.append(zero_shot_student(i))
        elif i % 5 == 4:
            photo, expected = references[i // 5 % len(references)]
            requests.append(classify_student(i, photo, expected))
        else:
            requests.append(kernel_student(i))
    for i, request in enumerate(requests):
        request.session = f"student-{students}-{i}"
    random.Random(students).shuffle(requests)
    answers = Hall(lab_app.url, lab_app.client).run(requests)
    return answers, summary(answers)


def check_crowd(answers: list[Answer], figures: dict, *, all_served: bool) -> None:
    failed = [
        (a.request.api_name, a.status, a.detail)
        for a in answers
        if a.kind == "failed"
        or (a.kind == "refused" and not (a.request.refusal and a.request.refusal in a.detail))
    ]
    assert not failed, f"{len(failed)} students got an error: {failed[:5]}"
    wrong = [(a.request.api_name, a.mismatch) for a in answers if a.mismatch]
    assert not wrong, f"students got someone else's answer: {wrong[:5]}"
    assert figures["5xx_other_than_busy"] == 0
    busy = [a for a in answers if a.kind == "busy"]
    assert all(told_when_to_retry(a) or "Queue is full" in a.detail for a in busy)
    if all_served:  # far below the hard ceiling: only the wait budget may turn anyone away
        full = [a for a in busy if not told_when_to_retry(a)]
        assert not full, f"{len(full)} of {len(answers)} were turned away below the queue size"
    else:
        assert figures.get("served", 0) >= 32, figures  # the queue worked through its share
        # "Busy" is said as the student joins, not after waiting in the queue (a generous bound).
        assert all(a.queue_seconds < 10 for a in busy), max(a.queue_seconds for a in busy)


def test_thirty_students_at_once_each_get_their_own_answer(lab_app, tmp_path):
    answers, figures = crowd(lab_app, 30, tmp_path)
    report("crowd-30", figures)
    check_crowd(answers, figures, all_served=True)
    assert_alive(lab_app.url)


@pytest.mark.stress
def test_two_hundred_students_at_once_are_served_or_told_the_lab_is_busy(lab_app, tmp_path):
    answers, figures = crowd(lab_app, 200, tmp_path)
    report("crowd-200", figures)
    check_crowd(answers, figures, all_served=False)
    assert_alive(lab_app.url)


# ---------------------------------------------------------------------------------------------
# A hall presses the same button: admitted by expected wait (demo/admission.py), never by count


def told_when_to_retry(answer: Answer) -> bool:
    """Refused by the wait budget: HTTP 429, Retry-After, and the sentence that says when."""
    retry = answer.retry_after
    return (
        answer.kind == "busy"
        and answer.status == 429
        and retry.isdigit()
        and answer.detail == refusal(int(retry))
    )


def classify_hall(students: int, tmp_path) -> list[Request]:
    """`students` students, each with their own photo whose answer (computed in-process through
    the same engine call, eight at a time like the endpoint) is known and has a clear top class."""
    requests: list[Request] = []
    for start in range(0, students * 3, 8):
        photos, images = [], []
        for seed in range(start, start + 8):
            photo = noise_png(7000 + seed, size=(32, 32))
            path = tmp_path / f"hall-{seed}.png"
            path.write_bytes(photo)
            photos.append(photo)
            images.append(read_image(str(path)).image)
        for photo, ranked in zip(photos, cnn.classify_many(images, TEST_CNN, 2)):
            (top, p), (_, second) = ranked
            if p - second > 0.01:
                requests.append(classify_student(len(requests), photo, {"label": top, "p": p}))
        if len(requests) >= students:
            return requests[:students]
    raise AssertionError("not enough photos with a clear top class")


def caption_hall(students: int, max_tokens: int = 4) -> list[Request]:
    """`students` students captioning the sample photos (small copies, cheap to upload) in turn:
    each answer must be the caption of that student's photo (computed alone, in-process, first)."""
    references = []
    for name, image in sample_images().items():
        small = image.copy()
        small.thumbnail((96, 96))
        photo = encode(small, "PNG")
        expected = captioning.caption(small, max_new_tokens=max_tokens).text
        references.append((photo, expected, f"{name}.png"))

    def student(i: int) -> Request:
        photo, expected, name = references[i % len(references)]

        async def check(outputs, http) -> str:
            return "" if outputs[0] == expected else f"expected {expected!r}, got {outputs[0]!r}"

        values = {"max_new_tokens": max_tokens}
        return Request("/caption", photo, values, check, name=name)

    return [student(i) for i in range(students)]


def admitted_hall(lab_app, requests: list[Request], name: str, *, during=None) -> tuple:
    """Send a hall at once; report its figures with the door's decisions for it. `during`, if
    given, runs while the hall is being sent (the hall runs in a thread)."""
    admission = admission_of(lab_app.demo)
    mark = admission.decided
    hall, result = Hall(lab_app.url, lab_app.client), {}
    sending = threading.Thread(target=lambda: result.update(answers=hall.run(requests)))
    started = time.perf_counter()
    sending.start()
    if during is not None:
        during(admission, mark)
    sending.join()
    answers, decisions = result["answers"], admission.since(mark)
    busy = [a.queue_seconds for a in answers if a.kind == "busy"]
    figures = summary(answers) | {
        "wall_s": round(time.perf_counter() - started, 2),
        "wait_budget_s": admission.budget_s,
        "refused_answer_max_s": round(max(busy), 2) if busy else None,
        "admission": Admission.summary(decisions),
        "decisions": [asdict(d) for d in decisions],
    }
    report(name, figures)
    return answers, decisions, figures


def check_admitted_hall(
    answers: list[Answer], decisions: list, figures: dict, refusal_bound_s: float | None = None
) -> None:
    """Every student is served (their own answer) or told when to retry; nothing else. Under
    `make stress`, refusals must also come within a generous `refusal_bound_s` of joining."""
    other = [
        (a.kind, a.status, a.detail)
        for a in answers
        if a.kind != "served" and not told_when_to_retry(a)
    ]
    assert not other, f"{len(other)} students got neither an answer nor a retry time: {other[:5]}"
    wrong = [a.mismatch for a in answers if a.mismatch]
    assert not wrong, f"students got someone else's answer: {wrong[:5]}"
    assert figures["5xx_other_than_busy"] == 0
    assert len(decisions) == len(answers)
    admitted = sum(1 for d in decisions if d.admitted)
    assert figures.get("served", 0) == admitted, (figures.get("served"), admitted)
    assert all(d.expected_wait_s <= figures["wait_budget_s"] for d in decisions if d.admitted)
    if refusal_bound_s is not None:  # said as the student joins, not after waiting in line
        assert all(a.queue_seconds < refusal_bound_s for a in answers if a.kind == "busy")


def held_hall(lab_app, requests: list[Request], name: str, budget: float | None = None):
    """Send a hall while the model line is held, release it once every request was decided:
    the estimates cannot change while they arrive, so exactly those whose expected wait fits
    the budget join (and are then served, batched as usual); the rest are told when to retry.
    Returns the answers, the decisions, the figures and how many fit."""
    demo = lab_app.demo
    admission = admission_of(demo)
    api_name = requests[0].api_name.strip("/")
    fn = next(fn for fn in demo.fns.values() if fn.api_name == api_name)
    with contextlib.ExitStack() as hold:
        line, _ = hold.enter_context(held_model_line(demo))
        per_request = admission.service_time(fn).avg_time  # fixed while nothing runs
        budget = admission.budget_s if budget is None else budget
        hold.enter_context(_budget(admission, budget))
        waits = [expected_wait([per_request] * ahead, [], 1) for ahead in range(len(requests))]
        fits = sum(1 for wait in waits if wait <= budget)

        def release_once_all_decided(admission, mark):
            deadline = time.monotonic() + 120
            while admission.decided - mark < len(requests):
                assert time.monotonic() < deadline, "the hall never all arrived"
                time.sleep(0.05)
            assert len(line.queue) == fits  # the refused never joined
            hold.close()  # the line runs: those who joined are served

        answers, decisions, figures = admitted_hall(
            lab_app, requests, name, during=release_once_all_decided
        )
    figures["estimate_s_per_request"] = round(per_request, 4)
    figures["wait_budget_s"] = budget  # the budget they arrived under (restored since)
    report(name, figures)
    check_admitted_hall(answers, decisions, figures)
    assert [d.admitted for d in decisions] == [True] * fits + [False] * (len(requests) - fits)
    assert figures.get("served", 0) == fits
    return answers, decisions, figures, fits


@contextlib.contextmanager
def _budget(admission, seconds: float):
    before, admission.budget_s = admission.budget_s, seconds
    try:
        yield
    finally:
        admission.budget_s = before


def test_forty_students_press_classify_at_once_and_all_are_served(lab_app, tmp_path):
    """40 fit the 30 s budget wherever a classification takes under 0.75 s (here ~0.05 s
    batched); on a slower machine those past the budget are told when to retry instead."""
    hall = classify_hall(40, tmp_path)
    answers, decisions, figures, fits = held_hall(lab_app, hall, "classify-40")
    if figures["estimate_s_per_request"] * 39 <= figures["wait_budget_s"]:
        assert fits == 40 and figures.get("served") == 40, figures
    assert_alive(lab_app.url)


@pytest.mark.stress
def test_two_hundred_students_press_classify_at_once_and_all_are_served(lab_app, tmp_path):
    answers, decisions, figures = admitted_hall(
        lab_app, classify_hall(200, tmp_path), "classify-200"
    )
    check_admitted_hall(answers, decisions, figures, refusal_bound_s=10)
    assert figures.get("served") == 200, figures
    assert figures["served_p95_s"] <= figures["wait_budget_s"], figures
    assert_alive(lab_app.url)


def test_a_queue_of_captions_past_the_wait_budget_is_told_when_to_retry(lab_app):
    """Captions arrive while the line is held: exactly those whose expected wait fits a 2 s
    budget join and are served; the rest are refused as they arrive, with when to try again."""
    demo = lab_app.demo
    caption = next(fn for fn in demo.fns.values() if fn.api_name == "caption")
    per_request = admission_of(demo).service_time(caption).avg_time
    # 2 s, or four and a half captions' worth where this machine captions faster than that
    # (read again under the hold, where it cannot change).
    budget = min(2.0, 4.5 * per_request)
    requests = caption_hall(12)
    answers, decisions, figures, fits = held_hall(lab_app, requests, "caption-queue", budget)
    assert 0 < fits < len(requests), figures
    assert figures.get("busy") == len(requests) - fits
    assert_alive(lab_app.url)


@pytest.mark.stress
def test_two_hundred_captions_at_once_those_that_fit_are_served_the_rest_told_when(
    lab_app, monkeypatch
):
    monkeypatch.setattr(admission_of(lab_app.demo), "budget_s", 2.0)
    answers, decisions, figures = admitted_hall(lab_app, caption_hall(200), "caption-200")
    check_admitted_hall(answers, decisions, figures, refusal_bound_s=10)
    assert figures.get("served", 0) >= 1, figures
    assert_alive(lab_app.url)


# ---------------------------------------------------------------------------------------------
# A long lecture: mixed requests across every tab, then look for leaks


SIMPLE = "0.0625 0.125 0.0625\n0.125 0.25 0.125\n0.0625 0.125 0.0625"
SOBEL = "-1 0 1\n-2 0 2\n-1 0 1"


STUDENTS = 12  # browser sessions in the soak; each makes many requests, as in a lecture


def mixed_request(i: int, rng: random.Random, pool: list[bytes], names: list[str]) -> Request:
    """Request `i` of a lecture: every tab in turn, varied controls, photos from a pool, sent
    from one of STUDENTS browser sessions."""
    api_name = names[i % len(names)]
    photo = pool[rng.randrange(len(pool))]
    choose = rng.choice
    values = {
        "/pixel_region": {
            "top": rng.randrange(0, 40),
            "left": rng.randrange(0, 50),
            "size": choose([4, 8, 16]),
        },
        "/color_space": {"space": choose(["HSV", "HSL", "Lab", "LUV", "XYZ", "CMYK"])},
        "/apply_kernel": {
            "kernel": choose([IDENTITY, SIMPLE, SOBEL]),
            "mode": choose(["clip", "abs", "minmax"]),
        },
        "/conv_layer": {"relu": choose([True, False])},
        "/classify": {"top_k": choose([1, 3, 5])},
        "/vit_model_by_name": {"model": "google/vit-base-patch16-224"},
        "/feature_maps": {
            "order": choose(["activation", "index"]),
            "channel": choose([None, 0, 3]),
        },
        "/grad_cam": {"target": choose([-1, 281, 504])},
        "/vit_attention": {"query": choose(["CLS", "1", "7"])},
        "/zero_shot": {"labels": choose(["cat\ndog", "cup of coffee\nrocket\ncat", "tree, car"])},
        "/similarity": {"texts": choose(["a cat\na cup", "a rocket\na tree\na face"])},
        "/caption": {"max_new_tokens": choose([4, 6])},
        "/caption_grounding": {"text": choose(["a cat on a red couch", "a cup of coffee"])},
        "/answer": {"questions": choose(["What is this?", "What colour is it?\nIs it big?"])},
        "/robustness": {"distortions": ["original", choose(["blur", "noise", "sketch"])]},
    }.get(api_name, {})
    return Request(api_name, photo, values, session=f"soak-student-{i % STUDENTS}")


def soak_names(lab_app) -> list[str]:
    """Every photo endpoint, the heavy comparisons once per round of the others."""
    from lab_api import photo_endpoints

    return [n for n in photo_endpoints(lab_app.client) if n != "/compare_cnns"]


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the OS: RSS = live
    except OSError:  # not glibc
        pass


def live_figures() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, matplotlib.figure.Figure))


# transformers 5 records attentions and hidden states with forward hooks it installs once per
# model, lazily and for good (`output_attentions` is served through them): not ours to remove.
LIBRARY_HOOKS = ("transformers.utils.output_capturing",)


def hooks_on_models() -> tuple[list[str], int]:
    """(hooks of ours left on any loaded model, the library's own hooks counted)."""
    found, library = [], 0
    for loaded in loaded_models():
        for path, module in loaded.model.named_modules():
            for kind in (
                "_forward_hooks",
                "_forward_pre_hooks",
                "_backward_hooks",
                "_backward_pre_hooks",
            ):
                for hook in getattr(module, kind, {}).values():
                    if getattr(hook, "__module__", "") in LIBRARY_HOOKS:
                        library += 1
                    else:
                        found.append(f"{loaded.spec.name}:{path or '<root>'}.{kind}")
    from torch.nn.modules import module as torch_module

    for kind in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks"):
        if getattr(torch_module, kind, None):
            found.append(f"global {kind}")
    return found, library


def tracked_bytes(demo) -> int:
    total = 0
    for files in demo.temp_file_sets:
        for path in list(files):
            try:
                total += Path(path).stat().st_size
            except OSError:
                pass
    return total


def soak(lab_app, requests: int, warmup: int, pool_size: int, name: str) -> dict:
    rng = random.Random(requests)
    pool = [noise_png(9000 + k) for k in range(pool_size)]
    names = soak_names(lab_app)
    hall = Hall(lab_app.url, lab_app.client)

    warm = hall.run([mixed_request(i, rng, pool, names) for i in range(warmup)], concurrency=4)
    assert all(a.kind == "served" for a in warm), [a.detail for a in warm if a.kind != "served"][:3]
    _trim()
    figures_before, rss_before, cache_before = live_figures(), rss(), tracked_bytes(lab_app.demo)
    library_hooks_before = hooks_on_models()[1]

    answers = hall.run(
        [mixed_request(warmup + i, rng, pool, names) for i in range(requests)], concurrency=4
    )
    _trim()
    rss_after, cache_after = rss(), tracked_bytes(lab_app.demo)
    figures = summary(answers) | {
        "endpoints": len(names),
        "warmup_requests": warmup,
        "rss_before_mb": round(rss_before / MB),
        "rss_growth_mb": round((rss_after - rss_before) / MB, 1),
        "cache_growth_mb": round((cache_after - cache_before) / MB, 1),
        "live_figures": live_figures(),
        "pyplot_figures": len(plt.get_fignums()),
        "hooks_left": len(hooks_on_models()[0]),
        "library_hooks": hooks_on_models()[1],
        "sessions": len(lab_app.demo.state_holder.session_data),
    }
    # Gradio's scheduled cleanup (delete_cache), run now as if its age had passed.
    delete_files_created_by_app(lab_app.demo, age=0)
    figures["cache_after_cleanup_mb"] = round(tracked_bytes(lab_app.demo) / MB, 1)
    report(name, figures)

    not_served = [(a.request.api_name, a.kind, a.detail) for a in answers if a.kind != "served"]
    assert not not_served, not_served[:5]
    assert rss_after - rss_before <= 50 * MB, f"RSS grew {(rss_after - rss_before) / MB:.0f} MB"
    ours, library = hooks_on_models()
    assert ours == [], ours
    assert library == library_hooks_before, "the library's hooks multiply with requests"
    assert plt.get_fignums() == []
    assert figures["live_figures"] <= figures_before + 2, "figures are not being closed"
    assert lab_app.demo.delete_cache, "the upload cache is never cleaned (set delete_cache)"
    assert figures["cache_after_cleanup_mb"] <= 5, "the cleanup leaves the soak's files behind"
    # The lab still works after the cleanup: the default photo and samples are kept.
    assert predict(lab_app.client, "/apply_kernel")[0]
    assert_alive(lab_app.url)
    return figures


def test_a_short_lecture_leaves_no_leaks(lab_app):
    soak(lab_app, requests=100, warmup=60, pool_size=4, name="soak-100")


@pytest.mark.stress
def test_a_long_lecture_leaves_no_leaks(lab_app):
    soak(lab_app, requests=500, warmup=200, pool_size=12, name="soak-500")


def test_the_default_photo_survives_the_cache_cleanup(lab_app):
    delete_files_created_by_app(lab_app.demo, age=0)
    photo = endpoints(lab_app.client)["/apply_kernel"]["parameters"][0]["parameter_default"]
    assert Path(photo["path"]).exists()
    assert predict(lab_app.client, "/apply_kernel")[0]
