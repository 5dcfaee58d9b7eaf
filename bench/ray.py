"""Ray Serve (`make cluster`): the hop's cost per request and CLIP's throughput with replicas.

The hop: classifying one photo with AlexNet through the CNN deployment (a local Ray head on
loopback) against the same call in process, interleaved; the difference of the medians is the
hop's overhead (pickling the photo and the answer, the handle's routing, the replica's event
loop). Target: ≤ 15 ms at p50. Throughput: 32 students at once asking CLIP zero-shot (each a new
photo, same labels), with one replica on every core and then two replicas on half the cores
each (a replica's torch threads are its CPU share); on a 2-core machine two replicas have no
cores to add, so that row reports, holding no target.
"""

from __future__ import annotations

import threading
import time

from bench.harness import Row, interleave, ms, times
from bench.inputs import photo, photos
from bench.world import CLIP_B32

AREA = "ray"
NEEDS = {"alexnet", CLIP_B32}
HOP_BOUND_S = 0.015
STUDENTS = 32
LABELS = "cat, dog, car, truck, coffee, rocket, person, bird, tree, house"


def _config(clip_replicas: int, device: str) -> dict:
    import os

    cores = os.cpu_count() or 1
    gpu = 0.25 if device == "cuda" else 0  # four replicas may share one GPU
    # A replica computes on as many torch threads as CPUs it asks for (vlmlab.serve.deployments
    # .use_cpu_share): the hop's replica asks for every core, as many threads as the process it
    # is compared to; CLIP's replicas split the cores between them (two replicas each on every
    # core would oversubscribe them).
    clip_cpus = max(cores / clip_replicas, 0.5)
    return {
        # batch_wait_timeout_s 0: a lone request does not wait for companions (serve.yaml's
        # 20 ms window is the batching's cost, not the hop's)
        "CNN": {"num_replicas": 1, "ray_actor_options": {"num_cpus": cores, "num_gpus": gpu},
                "max_ongoing_requests": 16,
                "user_config": {"batch_wait_timeout_s": 0.0, "preload": ["alexnet"]}},
        "CLIP": {"num_replicas": clip_replicas,
                 "ray_actor_options": {"num_cpus": clip_cpus, "num_gpus": gpu},
                 "max_ongoing_requests": 16, "max_queued_requests": 1000,
                 "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.02,
                                 "preload": [CLIP_B32]}},
    }  # fmt: skip


def rows(ctx) -> list[Row]:
    try:
        from vlmlab import serve as lab_serve
    except ImportError as error:  # requirements-ray.txt is not installed
        return [Row(AREA, "Ray Serve", ok=False, note=f"could not run: {error}")]
    from vlmlab.backend import InProcess

    device = "cuda" if ctx.device == "cuda" else "cpu"
    try:
        import os

        # Logical CPUs for Ray to place replicas by: the hop's replica asks for every core, and
        # CLIP's replicas for theirs beside it.
        remote = lab_serve.start(
            _config(1, device), families=("CNN", "CLIP"), num_cpus=4 * (os.cpu_count() or 1)
        )
        return [_hop_row(ctx, remote, InProcess()), *_throughput_rows(ctx, lab_serve)]
    finally:
        lab_serve.stop()


def _hop_row(ctx, remote, here) -> Row:
    repeats = ctx.scaled(30, least=9)
    pictures = photos(2 * repeats + 4)

    def through_ray(i):
        return remote.classify_many([pictures[i + 2]], ["alexnet"], [5])

    def in_process(i):
        return here.classify_many([pictures[i + repeats + 2]], ["alexnet"], [5])

    first = pictures[0]
    assert [label for label, _ in remote.classify_many([first], ["alexnet"], [5])[0]] == [
        label for label, _ in here.classify_many([first], ["alexnet"], [5])[0]
    ], "Ray and in-process disagree"
    pair = interleave(through_ray, in_process, repeats=repeats, warmup=2)
    hop = pair.ours - pair.peer
    return Row(
        AREA, "Ray hop: classify one photo (AlexNet) through the CNN deployment", "in process",
        ms(pair.ours), ms(pair.peer), f"+{ms(max(hop, 0.0))}", f"≤ +{ms(HOP_BOUND_S)}",
        hop <= HOP_BOUND_S,
        note="p50 of each, interleaved; the replica computes on as many threads as the process "
        "(every core) and does not wait to batch (batch_wait_timeout_s 0), so the difference is "
        "the hop alone: pickling the photo and the answer, the handle's routing, the replica's "
        "event loop",
    )  # fmt: skip


def _storm(remote, pictures) -> float:
    """Requests per second with STUDENTS asking CLIP zero-shot at once (threads)."""
    from vlmlab import clip

    requests = [clip.ZeroShotRequest(picture, LABELS, CLIP_B32) for picture in pictures]
    answers: list = [None] * len(requests)

    def ask(i):
        answers[i] = remote.zero_shot_batch([requests[i]])[0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    seconds = time.perf_counter() - start
    served = sum(isinstance(answer, clip.ZeroShotResult) for answer in answers)
    assert served == len(requests), f"only {served} of {len(requests)} answered"
    return served / seconds


def _new_photos(count: int, first: int) -> list:
    return [photo(first + i) for i in range(count)]


def _throughput_rows(ctx, lab_serve) -> list[Row]:
    rounds = ctx.scaled(3, least=1)
    device = "cuda" if ctx.device == "cuda" else "cpu"
    rates = {}
    for replicas in (1, 2):
        remote = lab_serve.start(_config(replicas, device), families=("CLIP",))
        _storm(remote, _new_photos(8, 90_000 + 100 * replicas))  # every replica warmed up
        rates[replicas] = max(  # new photos every round: CLIP's image cache never answers
            _storm(remote, _new_photos(STUDENTS, 20_000 + 1_000 * (2 * r + replicas)))
            for r in range(rounds)
        )
    gain = rates[2] / rates[1]
    what = f"CLIP zero-shot, {STUDENTS} students at once, throughput"
    return [
        Row(AREA, f"{what}: 2 replicas", "1 replica", f"{rates[2]:.1f}/s", f"{rates[1]:.1f}/s",
            times(gain), "report", None,
            note="best of the rounds; @serve.batch up to 8 per forward; each replica "
            "computes on its share of the cores (1 replica: all, 2: half each), so two replicas "
            "on two cores split the same cores rather than add any"),
    ]  # fmt: skip
