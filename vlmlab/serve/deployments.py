"""The lab's model families as Ray Serve deployments: CNN, ViT, CLIP, captioning, VQA and the
contrastive playground.

Each replica is a process holding its family's models (loaded on first use, the default ones at
start), and answers with the engine's own functions and results: a replica computes exactly what
the in-process lab computes. CNN and CLIP requests from every front end and student are gathered
with `@serve.batch` into one forward per batch; captions and a training run's snapshots stream
through the handle.

Health: a default model that fails to load is remembered and reported (`report()`, and the
sentence every request for it gets) instead of failing the replica, so Serve does not restart it
in a loop; `check_health` fails only when the replica itself can no longer compute.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
import threading
from collections import deque

from ray import serve

log = logging.getLogger("vlmlab")

BATCH_LOG = 256  # the latest batch sizes a replica remembers (for `report()`)


class Family:
    """What every family's deployment shares: preloading, the report and the health check."""

    topic = ""

    def __init__(self):
        self.problems: dict[str, str] = {}
        self.batches: deque[int] = deque(maxlen=BATCH_LOG)
        self.served = 0
        self.torch_threads = use_cpu_share()

    async def reconfigure(self, config: dict) -> None:
        """The `user_config` of the Serve config file: batch settings and models to preload."""
        config = config or {}
        batched = getattr(self, "batched", None)
        if batched is not None:
            if "max_batch_size" in config:
                batched.set_max_batch_size(int(config["max_batch_size"]))
            if "batch_wait_timeout_s" in config:
                batched.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
        for name in config.get("preload") or ():
            await asyncio.to_thread(self.preload, name)

    def preload(self, name: str) -> None:
        from vlmlab.errors import user_message
        from vlmlab.models import load_model

        try:
            load_model(name, topic=self.topic)
            self.problems.pop(name, None)
        except Exception as error:  # noqa: BLE001 - reported, not retried in a loop
            self.problems[name] = user_message(error) or f"{type(error).__name__}: {error}"
            log.warning("vlmlab %s: %s could not be loaded: %s", self.topic, name, error)

    def report(self) -> dict:
        """What this replica knows: its process, models that failed to load, batches formed."""
        context = serve.get_replica_context()
        return {
            "deployment": context.deployment,
            "replica": context.replica_tag if hasattr(context, "replica_tag") else "",
            "pid": os.getpid(),
            "problems": dict(self.problems),
            "batches": list(self.batches),
            "served": self.served,
            "torch_threads": self.torch_threads,
        }

    def check_health(self) -> None:
        """Serve's periodic check: the replica can still compute (torch answers)."""
        import torch

        torch.zeros(1).add_(1)

    def _count(self, size: int) -> None:
        self.batches.append(size)
        self.served += size

    async def _tally(self, size: int) -> None:
        """Count a batch here and in the cluster's tally (`vlmlab.serve.batches`)."""
        import ray

        self._count(size)
        try:
            tally = ray.get_actor("vlmlab-tally", namespace="vlmlab")
        except ValueError:  # deployed without `vlmlab.serve.start`: no tally to tell
            return
        await tally.add.remote(serve.get_replica_context().deployment, os.getpid(), size)


def use_cpu_share() -> int:
    """Give torch as many threads as this replica has CPUs (`ray_actor_options.num_cpus`, whole
    ones, at least one), or `OMP_NUM_THREADS` where it is set by hand; returns the count.

    Ray writes that rule into a worker's OMP_NUM_THREADS, but the lab's model loading gives torch
    every core of the process (`device.fit_cpu_threads`, right for a lab alone on its machine):
    each replica would spin one thread per core of the machine, and replicas beside each other
    (or beside the front) oversubscribe the cores (README "Past one machine" has the figures)."""
    import ray

    from vlmlab.device import set_cpu_threads

    share = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else max(1, math.floor(share))
    return set_cpu_threads(threads)


@serve.deployment(name="CNN")
class CNN(Family):
    topic = "cnn"

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def batched(self, items: list[tuple]) -> list:
        """(image, model, top_k) from many callers → one forward per network; a caller whose
        network fails gets its own error back, its neighbours their answers."""
        await self._tally(len(items))
        return await asyncio.to_thread(_classify, items)

    async def classify(self, image, model: str, top_k: int):
        return await self.batched((image, model, top_k))


def _classify(items: list[tuple]) -> list:
    from vlmlab import cnn

    answers: list = [None] * len(items)
    for name in dict.fromkeys(model for _, model, _ in items):
        where = [i for i, item in enumerate(items) if item[1] == name]
        try:
            found = cnn.classify_many(
                [items[i][0] for i in where], name, [items[i][2] for i in where]
            )
        except Exception as error:  # noqa: BLE001 - the error goes back to these callers only
            found = [_portable(error)] * len(where)
        for i, answer in zip(where, found):
            answers[i] = answer
    return answers


@serve.deployment(name="CLIP")
class CLIP(Family):
    topic = "clip"

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def batched(self, requests: list) -> list:
        """Many callers' `clip.ZeroShotRequest`s → one image-encoder pass per model; each gets
        their own result or `LabError` (`clip.zero_shot_batch`)."""
        from vlmlab import clip

        await self._tally(len(requests))
        try:
            found = await asyncio.to_thread(clip.zero_shot_batch, requests)
        except Exception as error:  # noqa: BLE001
            return [_portable(error)] * len(requests)
        return [_portable(item) if isinstance(item, Exception) else item for item in found]

    async def zero_shot(self, request):
        return await self.batched(request)


@serve.deployment(name="ViT")
class ViT(Family):
    topic = "vit"

    def inspect(self, image, model: str):
        from vlmlab import vit

        self._count(1)
        return _answer(vit.inspect_vit, image, model)


@serve.deployment(name="Captioning")
class Captioning(Family):
    topic = "captioning"

    async def caption_stream(self, image, settings: dict):
        """The growing caption, then the final one, each `Caption` sent as it comes."""
        from vlmlab import captioning

        self._count(1)
        async for part in _in_thread(lambda: captioning.caption_stream(image, **settings)):
            yield part


@serve.deployment(name="Contrastive")
class Contrastive(Family):
    topic = "contrastive"

    async def train(self, state: dict, settings: dict):
        """Train on from a run's `state()` (`contrastive.train`'s settings), sending each
        snapshot with the run's state after it. The front keeps the run: any replica may take
        it up next time, and a lost replica loses nothing already shown. A stream the front
        cancels (Stop, a closed page) stops at the run's next step."""
        from vlmlab import contrastive

        self._count(1)
        stop = threading.Event()

        def snapshots():
            run = contrastive.ContrastiveRun.from_state(state)
            for snapshot in contrastive.train(run=run, should_stop=stop.is_set, **settings):
                yield snapshot, run.state()

        try:
            async for part in _in_thread(snapshots):
                yield part
        finally:
            stop.set()


async def _in_thread(make_generator):
    """`make_generator()`'s items, each computed in a worker thread, so the replica's event
    loop (its health checks, other requests) runs between them however long the stream; an
    error ends the stream as its last item (`_portable`)."""
    done = object()
    try:
        generator = await asyncio.to_thread(make_generator)
        while (item := await asyncio.to_thread(next, generator, done)) is not done:
            yield item
    except Exception as error:  # noqa: BLE001 - the sentence travels as the last item
        yield _portable(error)


@serve.deployment(name="VQA")
class VQA(Family):
    topic = "vqa"

    def answer(self, image, questions, model: str, top_k: int):
        from vlmlab import vqa

        self._count(1)
        return _answer(vqa.answer_questions, image, questions, model=model, top_k=top_k)


def _answer(fn, *args, **kwargs):
    """`fn`'s result, or its error as a value (a plain `LabError` crosses back intact)."""
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001
        return _portable(error)


def _portable(error: Exception) -> Exception:
    """An error as the front may raise it: the user's sentence as a `LabError`, a fault of ours
    logged here and sent as a `RemoteFault` (its text, never its traceback's objects)."""
    from vlmlab.errors import LabError, user_message

    message = user_message(error)
    if message is not None:
        if isinstance(error, LabError):
            try:  # the engine's own error class when it crosses intact
                pickle.loads(pickle.dumps(error))
                return error
            except Exception:  # noqa: BLE001 - else a plain LabError with its sentence
                pass
        return LabError(message)
    log.exception("vlmlab replica fault", exc_info=error)
    return RemoteFault(f"{type(error).__name__}: {error}")


class RemoteFault(RuntimeError):
    """A fault inside a replica (logged there); the front logs it and shows its FAULT sentence."""


FAMILIES = {"CNN": CNN, "ViT": ViT, "CLIP": CLIP, "Captioning": Captioning, "VQA": VQA,
            "Contrastive": Contrastive}  # fmt: skip
