"""Where models run: CUDA in half precision when present, the CPU otherwise.

`gpu` marks the functions that run a model forward: on a Hugging Face Space with ZeroGPU it
is `spaces.GPU`, which lends them a GPU for the call; everywhere else it changes nothing.
"""

from __future__ import annotations

import functools
import os

import torch

_chosen: str | None = os.environ.get("VLMLAB_DEVICE") or None


def set_device(name: str | None) -> None:
    """Choose the device for models loaded from now on: "auto", "cpu", "cuda" or "cuda:N"."""
    global _chosen
    if name in (None, "", "auto"):
        _chosen = None
        return
    device = torch.device(name)  # raises for nonsense
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this machine has no CUDA GPU.")
    if device.type not in ("cpu", "cuda"):
        raise ValueError("The device must be auto, cpu, cuda or cuda:N.")
    _chosen = name


def default_device() -> torch.device:
    """The device new models go to."""
    if _chosen:
        return torch.device(_chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dtype_for(device: torch.device) -> torch.dtype:
    """Half precision on a GPU, full precision on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


@functools.lru_cache(maxsize=1)
def fit_cpu_threads() -> int:
    """Use every core this process may run on (containers often report more than they give)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, cores or 1))
    return torch.get_num_threads()


def _zero_gpu():
    try:
        import spaces  # only does something on a ZeroGPU Space
    except ImportError:
        return lambda fn=None, **_: fn if fn is not None else (lambda f: f)
    return spaces.GPU


gpu = _zero_gpu()
