"""vlmlab's entry point: `python app.py` (or `make run`) serves the lab; Spaces run it too.

`demo` is built at module level so `gradio app.py` reload mode and Hugging Face Spaces find it;
it is launched only when this file is run as a program.
"""

from __future__ import annotations

import argparse

from demo import build_demo, launch_options
from vlmlab.device import set_device

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
