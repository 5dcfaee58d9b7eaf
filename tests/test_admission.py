"""Admission by expected wait (demo/admission.py): its arithmetic, and its door on the launched lab.

Tests on the lab hold the model line first (its one slot counts as taken, see
`lab_load.held_model_line`): the line then only grows while requests arrive, so every decision
follows from the line and the estimates alone, never from how fast this machine happens to be.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid

import httpx
import pytest
from lab_api import assert_alive, call_raw, noise_png
from lab_load import Hall, held_model_line

from demo import admission as door
from demo.admission import (
    Admission,
    ServiceTime,
    admission_of,
    expected_wait,
    refusal,
    retry_after,
)

BOUND_S = 120.0  # the longest any wait in these tests may take (a bound, not a measurement)


# ---------------------------------------------------------------------------------------------
# The arithmetic


def test_an_endpoint_starts_from_a_safe_guess_and_learns_its_time_per_request():
    estimate = ServiceTime(first_guess=1.0)
    assert estimate.avg_time == 1.0 and estimate.count == 0
    estimate.record(0.3, requests=1)
    estimate.record(0.2, requests=1)
    assert estimate.avg_time == pytest.approx(0.25)
    estimate.record(0.8, requests=8)  # a batch of eight in 0.8 s: eight requests of 0.1 s each
    assert estimate.avg_time == pytest.approx(0.1)
    estimate.record(5.0, requests=0)  # a run whose students had all left: not a measurement
    assert estimate.count == 3


def test_one_slow_run_such_as_a_model_load_does_not_move_the_estimate():
    estimate = ServiceTime(first_guess=1.0)
    for seconds in (0.05, 0.06, 0.05):
        estimate.record(seconds, requests=1)
    estimate.record(12.0, requests=1)  # the model was loaded during this one
    assert estimate.avg_time == pytest.approx(0.05, abs=0.011)
    for _ in range(door.WINDOW):  # a lasting slowdown is adopted within a window
        estimate.record(2.0, requests=1)
    assert estimate.avg_time == pytest.approx(2.0)
    estimate.add(99.0)  # Gradio's own whole-batch sample is not ours to count
    assert estimate.avg_time == pytest.approx(2.0)


def test_expected_wait_is_the_work_ahead_shared_by_the_lines_workers():
    assert expected_wait([], [], 1) == 0
    assert expected_wait([0.5, 0.5, 2.0], [], 1) == pytest.approx(3.0)
    # A batch of 8 at 0.1 s a request, 0.3 s under way: 0.5 s left, plus one waiting.
    assert expected_wait([0.1], [(0.1, 8, 0.3)], 1) == pytest.approx(0.6)
    assert expected_wait([1.0] * 8, [(1.0, 1, 5.0)], 4) == pytest.approx(2.0)  # overdue: 0 left
    assert expected_wait([1.0] * 8, [], None) == 0  # an unlimited line has no wait


def test_a_refusal_says_roughly_when_to_try_again():
    assert retry_after(70.0, 30.0) == 40
    assert refusal(40) == "The lab is busy right now; please try again in about 40 s."
    assert retry_after(30.5, 30.0) == door.MIN_RETRY_S  # never "try again in 0 s"
    assert retry_after(41.0, 30.0) == 15  # rounded up to 5 s
    assert retry_after(230.0, 30.0) == 200  # past a minute: to 10 s
    assert refusal(retry_after(630.0, 30.0)) == (
        "The lab is busy right now; please try again in about 10 min."
    )


def test_the_wait_budget_comes_from_the_environment_or_app_switch(monkeypatch):
    monkeypatch.setenv(door.WAIT_BUDGET_ENV, "45")
    assert door.wait_budget_from_env() == 45.0
    for wrong in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv(door.WAIT_BUDGET_ENV, wrong)
        with pytest.raises(ValueError, match="VLMLAB_WAIT_BUDGET must be a positive number"):
            door.wait_budget_from_env()
    monkeypatch.delenv(door.WAIT_BUDGET_ENV)
    assert door.wait_budget_from_env() == door.WAIT_BUDGET_S

    from vlmlab import cli

    assert cli.parse_args(["--wait-budget", "45"]).wait_budget == 45.0
    assert cli.parse_args([]).wait_budget is None  # build_demo then reads the environment
    for wrong in ("0", "-3", "soon", "nan"):
        with pytest.raises(SystemExit):
            cli.parse_args(["--wait-budget", wrong])

    import app

    admission = admission_of(app.demo)
    monkeypatch.setattr(admission, "budget_s", admission.budget_s)
    monkeypatch.setattr(app.demo, "launch", lambda **options: None)
    app.main(["--wait-budget", "12.5"])
    assert admission.budget_s == 12.5
    with pytest.raises(SystemExit):
        app.main(["--wait-budget", "-3"])
    assert admission.budget_s == 12.5


# ---------------------------------------------------------------------------------------------
# The door on the launched lab


def fn_named(demo, api_name: str):
    return next(fn for fn in demo.fns.values() if fn.api_name == api_name.strip("/"))


@contextlib.contextmanager
def paused_model_line(demo):
    with held_model_line(demo, BOUND_S) as (line, _):
        yield line


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def upload(url: str, seed: int) -> str:
    response = httpx.post(
        f"{url}gradio_api/upload",
        files={"files": ("photo.png", noise_png(seed), "image/png")},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()[0]


def join_like_a_page(lab_app, session: str, photo_path: str) -> httpx.Response:
    """What the browser sends when a student presses "Caption" (the queue/join route)."""
    hall = Hall(lab_app.url, lab_app.client)
    fn = fn_named(lab_app.demo, "/caption")
    body = {
        "data": hall.data("/caption", photo_path, {"max_new_tokens": 4}),
        "fn_index": fn._id,
        "session_hash": session,
        "event_data": None,
        "trigger_id": None,
    }
    return httpx.post(f"{lab_app.url}gradio_api/queue/join", json=body, timeout=30)


def page_messages(stream):
    """The queue's messages to one page, decoded, from its /queue/data event stream."""
    for line in stream.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])


def test_a_waiting_student_sees_their_place_and_wait_and_a_closed_page_leaves_the_line(lab_app):
    """Gradio reports position and ETA (from the lab's estimates, from the first request on);
    a page that closes takes its request out of the line, and the student behind moves up."""
    demo = lab_app.demo
    first, second = f"hall-{uuid.uuid4().hex[:8]}", f"hall-{uuid.uuid4().hex[:8]}"
    photo = upload(lab_app.url, 11)
    per_request = admission_of(demo).service_time(fn_named(demo, "/caption")).avg_time
    with paused_model_line(demo) as line:
        assert join_like_a_page(lab_app, first, photo).status_code == 200
        assert join_like_a_page(lab_app, second, photo).status_code == 200
        assert [event.session_hash for event in line.queue] == [first, second]
        url = f"{lab_app.url}gradio_api/queue/data"
        with httpx.stream("GET", url, params={"session_hash": second}, timeout=30) as stream:
            status = next(m for m in page_messages(stream) if m["msg"] == "estimation")
        # The page is gone (its stream closed, as when a tab closes).
        assert status["rank"] == 1 and status["queue_size"] == 2
        assert status["rank_eta"] == pytest.approx(2 * per_request, rel=0.01)
        wait_until(lambda: second not in [e.session_hash for e in line.queue], "the page left")
        assert [event.session_hash for event in line.queue] == [first]
    with httpx.stream("GET", url, params={"session_hash": first}, timeout=BOUND_S) as stream:
        done = next(m for m in page_messages(stream) if m["msg"] == "process_completed")
    assert done["success"] is True
    assert_alive(lab_app.url)


def test_light_events_are_served_while_the_model_line_is_held(lab_app):
    """Pixels and Convolution redraws have their own line: a full model line never holds them."""
    demo = lab_app.demo
    photo = upload(lab_app.url, 12)
    results = {}

    def caption():
        file = {"path": photo, "meta": {"_type": "gradio.FileData"}}
        results["caption"] = call_raw(lab_app.url, lab_app.client, "/caption", file, max_new_tokens=4)

    with paused_model_line(demo) as line:
        waiting = threading.Thread(target=caption)
        waiting.start()
        wait_until(lambda: len(line.queue) == 1, "the caption joined the model line")
        event, outputs = call_raw(lab_app.url, lab_app.client, "/apply_kernel")
        assert event == "complete" and outputs[0], outputs
        assert len(line.queue) == 1  # the caption is still waiting: the kernel did not queue
    waiting.join(BOUND_S)
    assert results["caption"][0] == "complete", results


def test_the_door_fails_open_and_gradios_ceiling_still_holds(lab_app, monkeypatch):
    """A fault in the decision admits (the lab keeps serving; the fault is logged); Gradio's
    max_size stays the hard ceiling, and one line may not take the room light events need."""
    demo = lab_app.demo
    admission = admission_of(demo)
    assert demo._queue.max_size >= 1000
    monkeypatch.setattr(Admission, "decide", lambda self, fn: 1 / 0)
    event, outputs = call_raw(lab_app.url, lab_app.client, "/apply_kernel")
    assert event == "complete"
    monkeypatch.undo()

    monkeypatch.setattr(admission, "budget_s", 1e6)  # only the ceiling can refuse here
    monkeypatch.setattr(demo._queue, "max_size", 5)
    photo = upload(lab_app.url, 13)
    with paused_model_line(demo) as line:
        joined = [join_like_a_page(lab_app, f"ceiling-{i}", photo) for i in range(6)]
        # Five fit below 0.9 × 5; the sixth would leave light events no room.
        assert [r.status_code for r in joined] == [200] * 5 + [429]
        assert "try again in about" in joined[5].json()["detail"]
        decision = admission.decisions[-1]
        assert not decision.admitted and decision.ahead == 5, decision
        assert len(line.queue) == 5
