"""vlmlab on Ray Serve: the same answers as in process (the contrastive playground's training
run included), a crowd served by two replicas with batches formed, and a replica killed in the
middle of a crowd. Run by tests/test_ray.py in a
process of its own (Ray may end a process whose cluster it lost; never the main test run's).

One local Ray session (loopback, no dashboard) serves the whole module; it is shut down at the
end and leaves no process behind. The replicas read the same offline model world as the tests
(the conftest environment is passed to them).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import ray  # requirements-ray.txt (make test installs it): missing is a failure, not a skip
from PIL import Image
from ray import serve

from vlmlab import backend as seam
from vlmlab import captioning, clip, contrastive, vit, vqa
from vlmlab.errors import LabError
from vlmlab.models import default_model
from vlmlab.vqa import render as vqa_render

CNN = "mobilenet_v2"  # the CNN with real weights in the test world
VIT = default_model("vit")
STUDENTS = 30
STARTED = "vlmlab-ray-cases: Ray started"

# Two replicas of the batched families; a small CPU share each so seven replicas fit.
CONFIG = {
    "CNN": {
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 0.25},
        "max_ongoing_requests": 16,
        "max_queued_requests": 200,
        "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05,
                        "preload": [CNN, "alexnet"]},  # alexnet has no weights here  # fmt: skip
    },
    "CLIP": {
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 0.25},
        "max_ongoing_requests": 16,
        "max_queued_requests": 200,
        "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05},
    },
    "ViT": {"ray_actor_options": {"num_cpus": 0.25}},
    "Captioning": {"ray_actor_options": {"num_cpus": 0.25}},
    "VQA": {"ray_actor_options": {"num_cpus": 0.25}},
    "Contrastive": {"ray_actor_options": {"num_cpus": 0.25}},
}


@pytest.fixture(scope="module")
def lab():
    """The Ray back end, installed as the tabs' seam for the module; everything stopped after."""
    from vlmlab import serve as lab_serve

    # A local head on loopback, no dashboard. Started from the main thread: Ray's processes end
    # with the thread that started them.
    lab_serve.connect(num_cpus=2)
    print(STARTED, flush=True)  # tests/test_ray.py watches for it
    try:
        remote = lab_serve.start(CONFIG)
        previous = seam.use(remote)
        yield remote
        seam.use(previous)
    finally:
        lab_serve.stop()
    assert not ray.is_initialized()
    # The local head ended with the session: none of Ray's processes is left behind.
    deadline = time.monotonic() + 60
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(), _ray_processes()


def _ray_processes() -> list[str]:
    """Ray's processes started from this test process, still running (zombies excepted)."""
    import psutil

    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(child.cmdline())[:120])
        except psutil.NoSuchProcess:
            pass
    return [line for line in left if "ray" in line]


def photos(count: int, seed: int = 0) -> list[Image.Image]:
    """`count` different photos (each student's own)."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (64 + i % 5, 72, 3), dtype=np.uint8))
        for i in range(count)
    ]


def same_prediction(a, b) -> bool:
    return [label for label, _ in a] == [label for label, _ in b] and np.allclose(
        [p for _, p in a], [p for _, p in b], atol=1e-5
    )


def _crowd(jobs, during=None) -> list:
    """Run every job in its own thread at once (a hall pressing the button together); each
    job's outcome is its value or its exception. `during` runs once the first answer is in."""
    outcomes: list = [None] * len(jobs)
    first = threading.Event()

    def run(i):
        try:
            outcomes[i] = jobs[i]()
        except Exception as error:  # noqa: BLE001 - the outcome is checked by the caller
            outcomes[i] = error
        first.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    if during is not None:
        first.wait(300)
        during()
    for thread in threads:
        thread.join(600)
    assert not any(thread.is_alive() for thread in threads), "a student's request never returned"
    return outcomes


# -- the same answers, every family ----------------------------------------------------------


def test_every_family_answers_as_in_process(lab, chelsea, coffee):
    here = seam.InProcess()
    images = [chelsea, coffee]

    # CNN (real MobileNetV2 weights)
    through = lab.classify_many(images, [CNN, CNN], [5, 3])
    for got, want in zip(through, here.classify_many(images, [CNN, CNN], [5, 3])):
        assert same_prediction(got, want)
    assert [len(p) for p in through] == [5, 3]

    # CLIP zero-shot: each result, or its LabError in its place
    requests = [
        clip.ZeroShotRequest(chelsea, "cat, dog"),
        clip.ZeroShotRequest(coffee, ",,,"),
        clip.ZeroShotRequest(coffee, "cup of coffee\nrocket", templates="a photo of a {}."),
    ]
    got, want = lab.zero_shot_batch(requests), here.zero_shot_batch(requests)
    assert isinstance(got[1], LabError) and str(got[1]) == str(want[1])
    for a, b in (got[0], want[0]), (got[2], want[2]):
        assert type(a) is type(b) and a.labels == b.labels
        assert [label for label, _ in a.ranked()] == [label for label, _ in b.ranked()]
        assert np.allclose([p for _, p in a.ranked()], [p for _, p in b.ranked()], atol=1e-5)

    # ViT: the whole inspection, attention maps included
    a, b = lab.inspect_vit(chelsea, VIT), here.inspect_vit(chelsea, VIT)
    assert type(a) is vit.ViTInspection and (a.grid, a.num_special) == (b.grid, b.num_special)
    assert np.allclose(a.attentions, b.attentions, atol=1e-5)
    assert [label for label, _ in a.predictions] == [label for label, _ in b.predictions]

    # Captioning: streamed part by part through the handle, the same parts
    settings = {"prompt": "a picture of", "max_new_tokens": 8}
    got = list(lab.caption_stream(chelsea, **settings))
    want = list(here.caption_stream(chelsea, **settings))
    assert all(isinstance(part, captioning.Caption) for part in got)
    assert [(p.text, p.done) for p in got] == [(p.text, p.done) for p in want]
    assert len(got) > 1 and got[-1].done  # it streamed: partial captions came first

    # VQA
    a = lab.answer_questions(coffee, "What is it?\nIs it hot?", model=vqa.DEFAULT_MODEL, top_k=3)
    b = here.answer_questions(coffee, "What is it?\nIs it hot?", model=vqa.DEFAULT_MODEL, top_k=3)
    assert type(a) is type(b) and vqa_render.answer_rows(a) == vqa_render.answer_rows(b)

    # A bad request gets the engine's own sentence, through Ray as in process
    with pytest.raises(LabError) as through_ray:
        lab.classify_many([chelsea], [CNN], [0])
    with pytest.raises(LabError) as in_process:
        here.classify_many([chelsea], [CNN], [0])
    assert str(through_ray.value) == str(in_process.value)


def test_a_model_that_failed_to_load_is_reported_and_the_replica_stays_up(lab):
    report = lab.report()["CNN"]
    assert "alexnet" in report["problems"] and report["problems"]["alexnet"]
    assert CNN not in report["problems"]
    status = serve.status().applications["vlmlab-CNN"]
    assert status.status == "RUNNING"


def test_each_replica_computes_on_as_many_threads_as_its_cpu_share(lab):
    # every replica here asks for a quarter of a CPU: one torch thread each (not every core)
    assert {name: report["torch_threads"] for name, report in lab.report().items()} == {
        name: 1 for name in CONFIG
    }


# -- the contrastive playground: a run trained in a replica, kept by the front ---------------

TRAINING = {"steps": 6, "batch_size": 16, "seed": 5, "every": 3}  # a few steps: seconds


def _measures(snapshot) -> tuple:
    return (snapshot.step, snapshot.loss, snapshot.logit_scale, snapshot.matching_accuracy,
            snapshot.text_matching_accuracy, snapshot.zero_shot_accuracy)  # fmt: skip


def test_a_contrastive_run_trains_through_ray_as_in_process(lab):
    here = contrastive.new_run(**TRAINING)
    want = list(seam.InProcess().train_contrastive(here, **TRAINING))
    assert [s.step for s in want] == [0, 3, 6]

    # paused after 3 steps (the front keeps the run), then resumed: the same snapshots
    run = contrastive.new_run(**TRAINING)
    got = list(lab.train_contrastive(run, **{**TRAINING, "steps": 3}))
    assert all(isinstance(s, contrastive.Snapshot) for s in got) and run.step == 3
    got += list(lab.train_contrastive(run, **TRAINING))[1:]  # its first repeats step 3
    assert [_measures(s) for s in got] == [_measures(s) for s in want]
    assert np.array_equal(got[-1].similarity, want[-1].similarity)
    assert np.array_equal(got[-1].zero_shot_probabilities, want[-1].zero_shot_probabilities)
    assert np.array_equal(got[-1].history_loss, want[-1].history_loss)
    assert got[-1].stopped == want[-1].stopped == "Finished: 6 steps."
    assert run.history == here.history  # the front's run followed the replica's

    # Stop: the front stops reading; its run is where the last snapshot it showed was
    stopped = contrastive.new_run(**TRAINING)
    shown = list(lab.train_contrastive(stopped, should_stop=lambda: True, **TRAINING))
    assert [s.step for s in shown] == [0] and stopped.step == 0

    # a bad setting gets the engine's sentence, through Ray as in process
    with pytest.raises(LabError) as through_ray:
        list(lab.train_contrastive(contrastive.new_run(), **{**TRAINING, "lr": 5}))
    with pytest.raises(LabError) as in_process:
        list(seam.InProcess().train_contrastive(contrastive.new_run(), **{**TRAINING, "lr": 5}))
    assert str(through_ray.value) == str(in_process.value)


# -- a crowd through the front ---------------------------------------------------------------


def test_thirty_students_through_two_replicas_each_get_their_own_answer(lab, tmp_path):
    from demo import clip_tab, cnn_tab

    here = seam.InProcess()
    pictures = photos(STUDENTS)
    files = []
    for i, picture in enumerate(pictures):  # the tabs read the session's photo from a file
        path = str(tmp_path / f"student-{i}.png")
        picture.save(path)
        files.append(path)
    before = _sizes("CNN"), _sizes("CLIP")

    # CNN: each student their own photo and top-k, through the tab's batch handler
    expected = here.classify_many(pictures, [CNN] * STUDENTS, [1 + i % 5 for i in range(STUDENTS)])
    outcomes = _crowd(
        [
            (lambda i=i: cnn_tab.classify_batch([files[i]], [CNN], [1 + i % 5])[0][0])
            for i in range(STUDENTS)
        ]
    )
    for i, outcome in enumerate(outcomes):
        assert isinstance(outcome, dict), f"student {i}: {outcome!r}"
        assert len(outcome) == 1 + i % 5
        want = dict(expected[i])
        assert list(outcome) == list(want) and np.allclose(
            list(outcome.values()), list(want.values()), atol=1e-5
        ), f"student {i} got someone else's answer"

    # CLIP: each student their own labels, one of them their own name
    labels = [f"cat, dog, student {i}" for i in range(STUDENTS)]
    expected = here.zero_shot_batch(
        [clip.ZeroShotRequest(pictures[i], labels[i]) for i in range(STUDENTS)]
    )
    outcomes = _crowd(
        [
            (lambda i=i: clip_tab.classify_batch([files[i]], [labels[i]], ["a photo of a {}."],
                                                 [clip.DEFAULT_MODEL]))  # fmt: skip
            for i in range(STUDENTS)
        ]
    )
    for i, outcome in enumerate(outcomes):
        assert isinstance(outcome, tuple), f"student {i}: {outcome!r}"
        ranked = outcome[0][0]
        assert set(ranked) == {"cat", "dog", f"student {i}"}, f"student {i} got another's labels"
        want = dict(expected[i].ranked())
        assert np.allclose([ranked[k] for k in want], list(want.values()), atol=1e-4)

    # Both families served all 30 on two replicas, in batches (the replicas' own counts)
    for family, old in zip(("CNN", "CLIP"), before):
        new = _sizes(family)
        added = {pid: sizes[len(old.get(pid, [])):] for pid, sizes in new.items()}
        served = sum(sum(sizes) for sizes in added.values())
        assert served == STUDENTS, (family, added)
        assert max(max(sizes, default=0) for sizes in added.values()) > 1, (family, added)
        assert sum(len(sizes) for sizes in added.values()) < STUDENTS, (family, added)
        print(f"{family}: batch sizes per replica {added}")


def _sizes(family: str) -> dict[int, list[int]]:
    from vlmlab import serve as lab_serve

    return {pid: sizes for (name, pid), sizes in lab_serve.batches().items() if name == family}


# -- a fault ---------------------------------------------------------------------------------


def _replicas(app: str) -> list[str]:
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == "serve" and actor["name"].startswith(f"SERVE_REPLICA::{app}#")
    ]


def _running(app: str) -> int:
    deployment = serve.status().applications[app].deployments["CNN"]
    return deployment.replica_states.get("RUNNING", 0)


def test_a_replica_killed_mid_crowd_every_student_is_answered_or_told_to_try_again(lab):
    from vlmlab import serve as lab_serve

    here = seam.InProcess()
    pictures = photos(STUDENTS, seed=1)
    expected = here.classify_many(pictures, [CNN] * STUDENTS, [3] * STUDENTS)
    victims = _replicas("vlmlab-CNN")
    assert len(victims) == 2

    def kill():
        ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)

    outcomes = _crowd(
        [(lambda i=i: lab.classify_many([pictures[i]], [CNN], [3])[0]) for i in range(STUDENTS)],
        during=kill,
    )
    told = 0
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, LabError):  # the documented outcomes of a lost replica
            assert str(outcome) in (lab_serve.LOST, lab_serve.BUSY), f"student {i}: {outcome}"
            assert "try again" in str(outcome)
            told += 1
        else:
            assert not isinstance(outcome, Exception), f"student {i}: {outcome!r}"
            assert same_prediction(outcome, expected[i]), f"student {i} got another's answer"
    print(f"kill mid-crowd: {STUDENTS - told} answered, {told} told to try again")

    # Serve brings the replica back (bounded wait), and the new one answers
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        names = _replicas("vlmlab-CNN")
        if victims[0] not in names and len(names) == 2 and _running("vlmlab-CNN") == 2:
            break
        time.sleep(1)
    assert victims[0] not in _replicas("vlmlab-CNN")
    assert _running("vlmlab-CNN") == 2
    again = _crowd(
        [(lambda i=i: lab.classify_many([pictures[i]], [CNN], [3])[0]) for i in range(4)]
    )
    assert all(same_prediction(got, expected[i]) for i, got in enumerate(again))
