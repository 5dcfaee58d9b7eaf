"""Where models run: CUDA in half precision when present, the CPU otherwise (in float32, or in
bfloat16 when asked: about twice as fast on CPUs with bfloat16 instructions, never the default).

`gpu` marks the functions that run a model forward: on a Hugging Face Space with ZeroGPU it
is `spaces.GPU`, which lends them a GPU for the call; everywhere else it changes nothing.
"""

from __future__ import annotations

import functools
import os

import torch

_chosen: str | None = os.environ.get("VLMLAB_DEVICE") or None
CPU_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_cpu_dtype: torch.dtype = torch.float32  # VLMLAB_CPU_DTYPE may choose bfloat16 (see below)


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


def set_cpu_dtype(name: str) -> None:
    """Choose the precision of models loaded on the CPU from now on: "float32" (the default)
    or "bfloat16" (faster where the CPU has bfloat16 instructions; results drift slightly)."""
    global _cpu_dtype
    if name not in CPU_DTYPES:
        raise ValueError(f"The CPU precision must be one of: {', '.join(CPU_DTYPES)}.")
    _cpu_dtype = CPU_DTYPES[name]


if os.environ.get("VLMLAB_CPU_DTYPE"):
    set_cpu_dtype(os.environ["VLMLAB_CPU_DTYPE"])


def bfloat16_is_fast() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX) that oneDNN uses."""
    return torch.backends.mkldnn.is_available() and bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def dtype_for(device: torch.device) -> torch.dtype:
    """Half precision on a GPU; on the CPU float32, or bfloat16 when `set_cpu_dtype` chose it."""
    return torch.float16 if device.type == "cuda" else _cpu_dtype


_cpu_threads: int | None = None  # set_cpu_threads' count; None: every core


@functools.lru_cache(maxsize=1)
def fit_cpu_threads() -> int:
    """Use every core this process may run on (containers often report more than they give),
    or the count `set_cpu_threads` chose."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(_cpu_threads or max(1, cores or 1))
    return torch.get_num_threads()


def set_cpu_threads(count: int) -> int:
    """Compute on `count` CPU threads from now on instead of every core (a process that shares
    the machine by design, like a Ray Serve replica given part of its CPUs); returns the count."""
    global _cpu_threads
    _cpu_threads = max(1, int(count))
    fit_cpu_threads.cache_clear()
    return fit_cpu_threads()


def _zero_gpu():
    try:
        import spaces  # only does something on a ZeroGPU Space
    except ImportError:
        return lambda fn=None, **_: fn if fn is not None else (lambda f: f)
    return spaces.GPU


gpu = _zero_gpu()


def describe_device() -> str:
    """One line saying where models will run and in which precision (a notebook's first cell)."""
    from vlmlab import __version__

    device = default_device()
    precision = str(dtype_for(device)).removeprefix("torch.")
    if device.type == "cuda":
        where = f"the GPU {device} ({torch.cuda.get_device_name(device)})"
    else:
        where = f"the CPU ({fit_cpu_threads()} threads)"
    return f"vlmlab {__version__}: models run on {where} in {precision}."
