"""`python -m vlmlab` (and the `vlmlab` command): serve the lab, as `python app.py` does."""

from __future__ import annotations

from vlmlab.cli import configure, launch_settings, parse_args, serve
from vlmlab.memory import keep_memory_flat


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)  # --help answers before anything heavy loads
    keep_memory_flat()  # before gradio starts its threads
    configure(args)
    from vlmlab.demo import build_demo, launch_options

    serve(build_demo(wait_budget=args.wait_budget), launch_options(**launch_settings(args)))


if __name__ == "__main__":
    main()
