"""vlmlab's entry point: `python app.py` (or `make run`) serves the lab; Spaces run it too.

`demo` is built at module level so `gradio app.py` reload mode and Hugging Face Spaces find it;
it is launched only when this file is run as a program.
"""

from __future__ import annotations

import argparse
import ctypes
import sys


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every serving thread its own malloc arena, so a busy lab's memory creeps up
    (+157 MB over 500 requests); two arenas keep it flat. Must run before threads start."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 is M_ARENA_MAX
        except (OSError, AttributeError):
            pass


_fewer_malloc_arenas()

from demo import build_demo, launch_options  # noqa: E402
from vlmlab.device import set_device  # noqa: E402

demo = build_demo()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve vlmlab, the vision-language model lab.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="open a public gradio.live link")
    parser.add_argument(
        "--device", default="auto", help="where models run: auto (CUDA if present), cpu, cuda"
    )
    args = parser.parse_args(argv)
    set_device(args.device)
    demo.launch(**launch_options(host=args.host, port=args.port, share=args.share))


if __name__ == "__main__":
    main()
