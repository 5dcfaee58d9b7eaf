"""vlmlab past one machine: the engine's model calls on Ray Serve, the Gradio app a thin front.

`start()` joins (or starts) a Ray cluster, deploys one Serve deployment per model family from
`serve.yaml` (replicas, CPUs/GPUs per replica, batch sizes, autoscaling), and returns a
`RayBackend`: the `vlmlab.backend` seam's calls, sent through `DeploymentHandle`s. The tabs
then call `backend()` as always and get the engine's own results back.

This package is the only part of vlmlab that imports Ray (`pip install -r requirements-ray.txt`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import serve
from ray.serve.exceptions import BackPressureError

from vlmlab.errors import LabError

log = logging.getLogger("vlmlab")

CONFIG = Path(__file__).with_name("serve.yaml")
APP_PREFIX = "vlmlab-"  # each family is its own Serve application: vlmlab-CLIP, …
TALLY = "vlmlab-tally"  # a small actor counting each replica's batches (what `batches()` reads)
AGENT_TIMEOUT_MS = 300_000
ANSWER_TIMEOUT_S = 600.0  # the longest a front waits for one answer (a long caption on a CPU)
# Environment the replicas need to find the same models and settings as the front.
PASSED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TORCH_HOME",
              "VLMLAB_CACHE", "VLMLAB_MAX_LOADED_MODELS", "VLMLAB_CPU_DTYPE", "VLMLAB_DEVICE",
              "VLMLAB_MODELS", "VLMLAB_MAX_DOWNLOAD_MB", "HF_HUB_DISABLE_TELEMETRY",
              "TOKENIZERS_PARALLELISM", "HF_ENDPOINT")  # fmt: skip

BUSY = "The lab is busy right now; please try again in a few seconds."
LOST = (
    "The model server handling your request stopped before it answered; "
    "please try again (it is being restarted)."
)


class LabBusyError(LabError):
    """Serve's queues for a model family are full (`max_queued_requests`)."""


class ReplicaLostError(LabError):
    """The replica working on a request died; Serve starts another."""


@ray.remote(num_cpus=0)
class Tally:
    """Batch sizes per (deployment, replica process), as replicas report them."""

    def __init__(self):
        self.sizes: dict[tuple[str, int], list[int]] = {}

    def add(self, deployment: str, pid: int, size: int) -> None:
        self.sizes.setdefault((deployment, pid), []).append(size)

    def read(self) -> dict:
        return {key: list(sizes) for key, sizes in self.sizes.items()}


def load_config(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The deployments' options from a Serve-style config file (`serve.yaml` by default)."""
    text = Path(path or CONFIG).read_text()
    entries = (yaml.safe_load(text) or {}).get("deployments") or []
    from vlmlab.serve.deployments import FAMILIES

    config = {}
    for entry in entries:
        entry = dict(entry)
        name = entry.pop("name", None)
        if name not in FAMILIES:
            raise LabError(f"{path or CONFIG}: unknown deployment {name!r}; known: "
                           f"{', '.join(FAMILIES)}.")  # fmt: skip
        config[name] = entry
    return config


def runtime_env(extra: dict | None = None) -> dict:
    """What every worker needs: this checkout on its path, the caches and settings of the front."""
    root = str(Path(__file__).resolve().parents[2])
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    path = [root, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    env.update(extra or {})
    return {"env_vars": env}


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` (default: $RAY_ADDRESS); without one, start a head on
    this machine (loopback, no dashboard; `stop()` ends it). Nothing if already joined."""
    if ray.is_initialized():
        return
    # Ray's node agents start slowly on a busy machine; its default 30 s wait is too tight there.
    os.environ.setdefault("RAY_agent_register_timeout_ms", str(AGENT_TIMEOUT_MS))
    # The lab reads no Ray metrics; without them a worker waits on one agent less at start.
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    # A worker that cannot reach Ray's control store for this long ends itself (default 60 s,
    # which a machine loaded far past its cores can exceed).
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "300")
    # Ray starts its workers at nice 15, as background work; the replicas are the lab's work
    # (beside other programs a nice-15 replica's forward ran 3-4x slower than the same forward
    # in the front). Applies to a head started here; `ray start` reads the same variable.
    os.environ.setdefault("RAY_worker_niceness", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    local = {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    ray.init(
        address=address,
        runtime_env=runtime_env(),
        configure_logging=False,
        **({} if address else local),
    )


def start(
    config: str | os.PathLike | dict | None = None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    families: Sequence[str] | None = None,
) -> RayBackend:
    """Join the Ray cluster at `address` (default: $RAY_ADDRESS, else start one on this machine),
    deploy the families of `config` (a path or a parsed `load_config`) and return their back end.
    """
    from vlmlab.serve.deployments import FAMILIES

    options = config if isinstance(config, dict) else load_config(config)
    chosen = [name for name in FAMILIES if families is None or name in families]
    if num_cpus is None and not (address or os.environ.get("RAY_ADDRESS")):
        num_cpus = local_cpus({name: options.get(name, {}) for name in chosen})
    connect(address, num_cpus=num_cpus)
    serve.start(proxy_location="Disabled")
    tally = Tally.options(
        name=TALLY, namespace="vlmlab", get_if_exists=True, lifetime="detached"
    ).remote()

    handles = {}
    for name in chosen:
        cls = FAMILIES[name]
        settings = dict(options.get(name, {}))
        app = cls.options(**settings).bind()
        handles[name] = serve.run(app, name=APP_PREFIX + name, route_prefix=None)
    del tally  # it lives on (detached) until `stop()`
    return RayBackend(handles)


def local_cpus(options: dict[str, dict]) -> int:
    """The CPUs a head on this machine declares: the cores, or as many as the deployments ask
    for at their most replicas if that is more (serve.yaml asks for 7 on any machine). Ray places
    replicas by these counts; each replica computes on its own count of threads, so replicas that
    are mostly idle, as a lab's are between questions, share the real cores."""
    asked = 0.0
    for settings in options.values():
        actor = settings.get("ray_actor_options") or {}
        scaling = settings.get("autoscaling_config") or {}
        replicas = settings.get("num_replicas", "auto" if scaling else 1)
        most = scaling.get("max_replicas", 1) if replicas == "auto" else int(replicas)
        asked += float(actor.get("num_cpus", 1)) * most
    return max(os.cpu_count() or 1, math.ceil(asked))


def stop() -> None:
    """Remove the lab's deployments and the tally and leave the Ray cluster (a head that
    `connect` started ends with it; a cluster joined by address keeps running)."""
    if not ray.is_initialized():
        return
    serve.shutdown()
    try:
        ray.kill(ray.get_actor(TALLY, namespace="vlmlab"))
    except ValueError:
        pass
    ray.shutdown()


def batches() -> dict[tuple[str, int], list[int]]:
    """Every batch formed so far: {(deployment, replica pid): [sizes in order]}."""
    return ray.get(ray.get_actor(TALLY, namespace="vlmlab").read.remote())


def _result(submit: Callable[[], Any], response=None) -> Any:
    """The answer to `submit()` (a handle call; `response` if already sent), with Serve's and
    Ray's failures turned into one sentence each. The engine's calls are pure, so a call whose
    replica died is sent once more (to a live replica) before its student is told to retry."""
    for attempt in range(2):
        try:
            response = response if response is not None else submit()
            return _raised(response.result(timeout_s=ANSWER_TIMEOUT_S))
        except LabError:
            raise
        except (BackPressureError, TimeoutError):
            raise LabBusyError(BUSY) from None
        except ray.exceptions.RayError as error:
            log.warning("vlmlab: a replica was lost (attempt %d): %s", attempt + 1, error)
            response = None
    raise ReplicaLostError(LOST)


def _streamed(parts) -> Iterator:
    """A streaming handle call's items as they come, with Serve's and Ray's failures turned into
    one sentence each; the stream is cancelled when its reader stops early."""
    try:
        for part in parts:
            yield _raised(part)
    except LabError:
        raise
    except BackPressureError:
        raise LabBusyError(BUSY) from None
    except ray.exceptions.RayError as error:
        log.warning("vlmlab: a streaming replica was lost: %s", error)
        raise ReplicaLostError(LOST) from None
    finally:
        parts.cancel()


def _raised(answer):
    if isinstance(answer, Exception):
        raise answer
    return answer


class RayBackend:
    """The `vlmlab.backend` seam on Ray Serve: the same calls, answered by deployments."""

    remote = True

    def __init__(self, handles: dict):
        self.handles = handles

    def _handle(self, family: str):
        if family not in self.handles:
            raise LabError(f"{family} is not deployed on this cluster (see serve.yaml).")
        return self.handles[family]

    def load(self, loader, *args, **kwargs) -> None:
        """Replicas load their own models; the front loads nothing."""
        return None

    def classify_many(self, images, models, top_ks) -> list:
        handle = self._handle("CNN")
        calls = [functools.partial(handle.classify.remote, *request)
                 for request in zip(images, models, top_ks)]  # fmt: skip
        sent = [(call, call()) for call in calls]  # all at once: the deployment batches them
        return [_result(call, response) for call, response in sent]

    def inspect_vit(self, image, model: str):
        return _result(functools.partial(self._handle("ViT").inspect.remote, image, model))

    def zero_shot_batch(self, requests) -> list:
        handle = self._handle("CLIP")
        calls = [functools.partial(handle.zero_shot.remote, request) for request in requests]
        sent = [(call, call()) for call in calls]
        answers = []
        for call, response in sent:
            try:
                answers.append(_result(call, response))
            except LabError as error:  # in its place, as in process
                answers.append(error)
        return answers

    def caption_stream(self, image, **settings) -> Iterator:
        stream = self._handle("Captioning").options(stream=True)
        yield from _streamed(stream.caption_stream.remote(image, settings))

    def train_contrastive(self, run, *, should_stop=None, **settings) -> Iterator:
        """The run trains in a Contrastive replica from its state, and follows it here after
        every snapshot: Stop keeps what was shown, and Train continues on any replica."""
        stream = self._handle("Contrastive").options(stream=True)
        with contextlib.closing(_streamed(stream.train.remote(run.state(), settings))) as parts:
            for snapshot, state in parts:
                run.load_state(state)
                yield snapshot
                if should_stop is not None and should_stop():
                    return

    def answer_questions(self, image, questions, *, model: str, top_k: int):
        handle = self._handle("VQA")
        return _result(functools.partial(handle.answer.remote, image, questions, model, top_k))

    def report(self) -> dict[str, dict]:
        """One replica's report per family: models that failed to load, batches, requests."""
        return {name: _result(handle.report.remote) for name, handle in self.handles.items()}

    def close(self) -> None:
        stop()
