"""The lab's command line for serving it (`python app.py`, `python -m vlmlab`, `vlmlab`); the
feature-visualisation atlas has its own (`python -m vlmlab.cnn.atlas`, vlmlab/cnn/atlas/__main__.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

CPU_DTYPES = ("float32", "bfloat16")  # vlmlab.device.CPU_DTYPES, named here so --help stays light


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vlmlab", description="Serve vlmlab, the vision-language model lab."
    )
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
    parser.add_argument(
        "--wait-budget",
        type=wait_budget,
        default=None,
        metavar="SECONDS",
        help="the longest expected wait a request is admitted to; past it a student is told "
        "when to try again (default: $VLMLAB_WAIT_BUDGET, else 30)",
    )
    parser.add_argument(
        "--models",
        choices=("curated", "any"),
        default=None,
        help="curated: only the lab's own choices; any: also models by name (torchvision "
        "classifiers, compatible Hugging Face ids). Default: curated on a Space, any elsewhere",
    )
    parser.add_argument(
        "--max-download-mb",
        type=float,
        default=None,
        help="the largest model by name the lab will fetch, in MB (default 2048)",
    )
    parser.add_argument(
        "--max-loaded-models",
        type=int,
        default=None,
        help="models kept in memory at once, least recently used dropped first (default 12)",
    )
    parser.add_argument(
        "--ray",
        action="store_true",
        help="serve the models from Ray Serve deployments, this app a thin front (make cluster; "
        "needs requirements-ray.txt): a local Ray head, or the cluster at --ray-address",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="with --ray: the Ray cluster to join (default: $RAY_ADDRESS, else a local head)",
    )
    parser.add_argument(
        "--ray-config",
        default=None,
        metavar="YAML",
        help="with --ray: the deployments' replicas, CPUs/GPUs and batching "
        "(default: vlmlab/serve/serve.yaml)",
    )
    return parser.parse_args(argv)


def wait_budget(text: str) -> float:
    """--wait-budget: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return seconds


def choose_device(args: argparse.Namespace) -> None:
    """Apply --device and --cpu-dtype before any model loads."""
    from vlmlab.device import bfloat16_is_fast, set_cpu_dtype, set_device

    set_device(args.device)
    if args.cpu_dtype:
        set_cpu_dtype(args.cpu_dtype)
        if args.cpu_dtype == "bfloat16" and not bfloat16_is_fast():
            print("vlmlab: this CPU has no bfloat16 instructions; bfloat16 will be slow here.")


def choose_models(args: argparse.Namespace) -> bool:
    """Apply --models, --max-download-mb and --max-loaded-models; True if models by name were
    switched on or off (an app built before must be built again to show or hide their boxes)."""
    from vlmlab.models import set_max_loaded_models
    from vlmlab.models_by_name import policy, set_policy

    offered = policy().enabled
    set_policy(args.models, args.max_download_mb)
    if args.max_loaded_models is not None:
        set_max_loaded_models(args.max_loaded_models)
    return policy().enabled != offered


def choose_backend(args: argparse.Namespace) -> None:
    """With --ray, deploy the models on Ray Serve and send the tabs' model calls there."""
    if not args.ray:
        return
    try:
        from vlmlab import serve as ray_serve
    except ImportError:
        raise SystemExit(
            "vlmlab: --ray needs Ray Serve: pip install -r requirements-ray.txt (make cluster "
            "installs it)."
        ) from None
    from vlmlab.backend import use

    # The replicas read the same choices from their environment (vlmlab.serve.runtime_env).
    chosen = {
        "VLMLAB_DEVICE": None if args.device == "auto" else args.device,
        "VLMLAB_CPU_DTYPE": args.cpu_dtype,
        "VLMLAB_MODELS": args.models,
        "VLMLAB_MAX_DOWNLOAD_MB": args.max_download_mb,
        "VLMLAB_MAX_LOADED_MODELS": args.max_loaded_models,
    }
    os.environ.update({name: str(value) for name, value in chosen.items() if value is not None})
    print("vlmlab: starting the model deployments on Ray Serve…", flush=True)
    remote = ray_serve.start(args.ray_config, address=args.ray_address)
    use(remote)
    # A stop by signal (`kill`, systemd, `docker stop`, `timeout`) ends the lab as Ctrl-C does,
    # Ray's exit handler included (a local head ends with its agents); Ray's own SIGTERM handler
    # aborted the process and left the head's agents running.
    signal.signal(signal.SIGTERM, _interrupted)
    for family, report in remote.report().items():
        for model, problem in report["problems"].items():
            print(f"vlmlab: {family}: {model} could not be loaded: {problem}", flush=True)


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def configure(args: argparse.Namespace) -> bool:
    """Apply the device, model and back-end choices, in that order (before any model loads);
    True if models by name were switched on or off (see `choose_models`)."""
    choose_device(args)
    changed = choose_models(args)
    choose_backend(args)
    return changed


def launch_settings(args: argparse.Namespace) -> dict:
    """What `launch_options` takes from the command line."""
    return {"host": args.host, "port": args.port, "share": args.share}


def serve(demo, options: dict) -> None:
    """Say which models are here (the caches only: no network), serve `demo` with `options`
    (`launch_options`), and on a Hugging Face Space fetch the default CNN's weights in the
    background once the first page can be served. Blocks until the server stops."""
    from vlmlab import model_cache

    print("\n".join(f"vlmlab: {line}" for line in model_cache.status_lines()), flush=True)
    demo.launch(**options, prevent_thread_lock=True)
    if model_cache.on_a_space():
        # A Space's build fetches the Hugging Face models (preload_from_hub), not torchvision's.
        model_cache.fetch_in_background()
    demo.block_thread()

