"""vlmlab's entry point: `python app.py` (or `make run`) serves the lab; Spaces run it too.

`demo` is built at module level so `gradio app.py` reload mode and Hugging Face Spaces find it;
it is launched only when this file is run as a program. An installed lab starts the same way
with `python -m vlmlab` or the `vlmlab` command.
"""

from __future__ import annotations

from vlmlab.memory import keep_memory_flat

keep_memory_flat()  # before gradio starts its threads

from demo import build_demo, launch_options  # noqa: E402
from demo.admission import admission_of  # noqa: E402
from vlmlab.cli import configure, launch_settings, parse_args, serve  # noqa: E402

demo = build_demo()


def main(argv: list[str] | None = None) -> None:
    global demo
    args = parse_args(argv)
    if configure(args):  # "your own model" boxes show only with models by name on
        demo = build_demo()
    if args.wait_budget is not None:
        admission_of(demo).budget_s = args.wait_budget
    serve(demo, launch_options(**launch_settings(args)))


if __name__ == "__main__":
    main()
