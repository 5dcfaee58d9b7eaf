"""vlmlab's entry point: `python app.py` (or `make run`) serves the lab; Spaces run it too.

`demo` is built at module level so `gradio app.py` reload mode and Hugging Face Spaces find it;
it is launched only when this file is run as a program.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import threading
import time


def _keep_memory_flat(arenas: int = 2, every_s: float = 10.0) -> None:
    """glibc gives every serving thread its own malloc arena and keeps freed pages for reuse, so
    a busy lab's resident memory creeps up. Two arenas, and a daemon thread that hands free
    pages back to the system every few seconds (`malloc_trim`), keep it flat. Must run before
    other threads start."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # -8 is M_ARENA_MAX
    except (OSError, AttributeError):
        return

    def trim() -> None:
        while True:
            time.sleep(every_s)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


_keep_memory_flat()

from demo import build_demo, launch_options  # noqa: E402
from vlmlab.device import (  # noqa: E402
    CPU_DTYPES,
    bfloat16_is_fast,
    set_cpu_dtype,
    set_device,
)

demo = build_demo()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve vlmlab, the vision-language model lab.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="open a public gradio.live link")
    parser.add_argument(
        "--device", default="auto", help="where models run: auto (CUDA if present), cpu, cuda"
    )
    parser.add_argument(
        "--cpu-dtype",
        choices=sorted(CPU_DTYPES),
        default=None,
        help="precision of models on the CPU: float32 (default) or bfloat16 (about twice as fast "
        "on CPUs with bfloat16 instructions; results drift slightly, see README)",
    )
    args = parser.parse_args(argv)
    set_device(args.device)
    if args.cpu_dtype:
        set_cpu_dtype(args.cpu_dtype)
        if args.cpu_dtype == "bfloat16" and not bfloat16_is_fast():
            print("vlmlab: this CPU has no bfloat16 instructions; bfloat16 will be slow here.")
    demo.launch(**launch_options(host=args.host, port=args.port, share=args.share))


if __name__ == "__main__":
    main()
