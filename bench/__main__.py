"""`python -m bench [area …]` (or `make bench`): every benchmark, one table, artifacts/bench.md.

Areas run in the order below; name some to run only those (`python -m bench kernels clip`).
`--quick` cuts repetitions to a third (for iterating, not for quoting); `--world DIR` keeps the
full-size random-weight models in DIR between runs instead of a temporary folder; `--device cuda`
runs models on the GPU (bench/gpu.sh); `--compile resnet50|none` picks the torch.compile row.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench import world

AREAS = (
    "kernels", "cnn", "featurevis", "vit", "contrastive", "clip", "captioning", "endpoints", "hall",
    "startup", "memory", "speedups", "ray",
)  # fmt: skip


class Context:
    """What every area shares: the world folder, repetition scale, and one launched app."""

    def __init__(self, folder: Path, scale: float, device: str, compile: str = "alexnet"):
        self.folder = folder
        self.scale = scale
        self.device = device
        self.compile = compile  # the CNN torch.compile is tried on, or "none"
        self._app = None
        self._client = None

    def scaled(self, repeats: int, least: int = 3) -> int:
        return max(least, round(repeats * self.scale))

    def app_args(self) -> tuple[str, ...]:
        """What `python app.py` is launched with besides host and port."""
        return ("--device", self.device) if self.device != "auto" else ()

    def app(self):
        """The app under test, launched on first use and shared by the areas that need it."""
        if self._app is None:
            from bench.app import App

            self._app = App(self.folder / "logs", extra_args=self.app_args())
            self._app.start()
        return self._app

    def client(self):
        if self._client is None:
            self._client = self.app().client()
        return self._client

    def close(self) -> None:
        if self._app is not None:
            self._app.stop()
            self._app = None
            self._client = None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {cores} cores{gpu}; torch {torch.__version__}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", metavar="area", help="any of: " + ", ".join(AREAS))
    parser.add_argument("--quick", action="store_true", help="a third of the repetitions")
    parser.add_argument("--world", help="keep the full-size random-weight models here between runs")
    parser.add_argument("--device", default=os.environ.get("VLMLAB_DEVICE", "auto"))
    parser.add_argument(
        "--compile",
        default="alexnet",
        choices=("alexnet", "resnet50", "none"),
        help="the CNN to try torch.compile on (ResNet-50 compiles for minutes on 2 cores)",
    )
    parser.add_argument("--out", default="artifacts/bench.md", help="markdown copy of the table")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.areas) - set(AREAS))
    if unknown:
        parser.error(f"unknown area {', '.join(unknown)}; choose from {', '.join(AREAS)}")
    selected = [area for area in AREAS if area in args.areas] or list(AREAS)

    folder, temporary = world.temporary_folder(args.world)
    world.activate(folder)  # before anything imports transformers
    os.environ["VLMLAB_DEVICE"] = args.device if args.device != "auto" else ""
    from bench.harness import failed, format_markdown, format_text

    start = time.perf_counter()
    modules = [importlib.import_module(f"bench.{area}") for area in selected]
    print(f"vlmlab benchmarks: {', '.join(selected)} — models in {folder}", flush=True)
    world.build(folder, set().union(*(m.NEEDS for m in modules)))
    world.seed_real_mobilenet(folder)
    ctx = Context(folder, 1 / 3 if args.quick else 1.0, args.device, args.compile)
    rows = []
    try:
        for area, module in zip(selected, modules):
            began = time.perf_counter()
            try:
                new = module.rows(ctx)
            except Exception as error:  # noqa: BLE001 - one broken area must not hide the others
                traceback.print_exc()
                new = [failed(area, "(whole area)", error)]
            rows += new
            print(format_text(new), flush=True)
            print(f"  ({area}: {time.perf_counter() - began:.0f} s)\n", flush=True)
    finally:
        ctx.close()
        if temporary:
            world.remove(folder)

    header = f"Measured on {machine()}; {time.strftime('%Y-%m-%d')}."
    minutes = (time.perf_counter() - start) / 60
    print("=" * 100)
    print(header)
    print(format_text(rows))
    passed = sum(row.ok is True for row in rows)
    missed = sum(row.ok is False for row in rows)
    print(f"\n{passed} targets met, {missed} missed, in {minutes:.1f} min.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(format_markdown(rows, header))
    print(f"markdown table: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
