"""What models are on this machine, and fetching them before a lecture (`make models`).

    python -m vlmlab.models status             # offline, in about a second
    python -m vlmlab.models download           # every default model, with progress bars
    python -m vlmlab.models download NAME…     # the named ones (`all`: the whole registry)

Models go into the standard caches (HF_HOME for Hugging Face, TORCH_HOME for torchvision), so
the lab, transformers and torchvision all find them afterwards without a network.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterable

from vlmlab.errors import LabError
from vlmlab.models import (
    DEFAULTS,
    REGISTRY,
    get_spec,
    hf_snapshot,
    local_size,
    torch_checkpoints,
)

Say = Callable[[str], None]


def default_names() -> list[str]:
    """The default model of every topic, in lecture order, each once."""
    return list(dict.fromkeys(DEFAULTS.values()))


def _megabytes(size: int) -> str:
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def status_lines(names: Iterable[str] | None = None) -> list[str]:
    """One line per model: ready (with its size here) or missing (with its download size),
    and a closing line that counts them. Reads the caches only: no network, no torch."""
    specs = [get_spec(name) for name in names] if names is not None else list(REGISTRY)
    defaults = set(DEFAULTS.values())
    lines, ready, total = [], 0, 0
    width = max(len(spec.name) for spec in specs)
    for spec in specs:
        size = local_size(spec.name)
        mark = "*" if spec.name in defaults else " "
        if size:
            ready += 1
            total += size
            state = f"ready    {_megabytes(size):>7}          "
        else:
            state = f"missing  {_megabytes(spec.download_mb * 1_000_000):>7} to fetch"
        lines.append(f" {mark} {spec.name:<{width}}  {state}   {spec.title}")
    listed = {spec.name for spec in specs}
    missing_defaults = [n for n in default_names() if n in listed and not local_size(n)]
    size = f" ({_megabytes(total)})" if total else ""
    lines.append(f"{ready} of {len(specs)} models ready here{size}.")
    if missing_defaults:
        lines.append(
            f"Defaults (*) missing: {', '.join(missing_defaults)}. "
            "Run `make models` once on a network; then the lab needs none."
        )
    else:
        lines.append("Every default (*) is ready: the lab needs no network.")
    return lines


def where() -> str:
    """The two caches, as a line."""
    from huggingface_hub import constants

    return f"Hugging Face cache: {constants.HF_HUB_CACHE}; torchvision weights: {torch_checkpoints()}"


def download(names: Iterable[str] | None = None, say: Say = print) -> bool:
    """Fetch each model (the defaults when `names` is None) into the standard caches unless it
    is already there, load it once to check it, and say what is ready. True when all are."""
    import torch

    from vlmlab import models

    names = default_names() if names is None else list(names)
    specs = [get_spec(name) for name in names]  # an unknown name stops before any download
    ok = True
    for spec in specs:
        here = models.is_local(spec.name)
        say(
            f"{spec.name}: {'here; checking that it loads' if here else 'fetching'} "
            f"({spec.title}{'' if here else f', about {spec.download_mb} MB'})…"
        )
        try:
            loaded = models._load(spec, torch.device("cpu"), None, True)
        except LabError as error:
            say(f"{spec.name}: NOT READY. {error}")
            ok = False
            continue
        except Exception as error:  # noqa: BLE001 - a broken file or download: say it, go on
            say(f"{spec.name}: NOT READY, it did not load ({type(error).__name__}: {error}).")
            ok = False
            continue
        parameters = sum(p.numel() for p in loaded.model.parameters())
        del loaded
        say(
            f"{spec.name}: ready, loads ({parameters / 1e6:.1f} M parameters, "
            f"{_megabytes(local_size(spec.name))} here)."
        )
    return ok


def fetch_in_background(names: Iterable[str] | None = None, say: Say = print) -> threading.Thread:
    """Start fetching the torchvision weights among `names` (the defaults when None) in a
    daemon thread; for a Hugging Face Space, whose build step fetches only Hugging Face models.
    The weights land where the loader looks; nothing is loaded into the lab's model slots."""
    names = default_names() if names is None else list(names)
    wanted = [n for n in names if get_spec(n).kind == "torchvision" and not local_size(n)]

    def fetch() -> None:
        import torch

        from vlmlab.models import torchvision_weights

        for name in wanted:
            try:
                # torchvision's own download: same file, same place, hash checked.
                torch.hub.load_state_dict_from_url(
                    torchvision_weights(name).url, progress=False, check_hash=True
                )
                size = _megabytes(local_size(name))
                say(f"vlmlab: {name} weights fetched in the background ({size}).")
            except Exception as error:  # noqa: BLE001 - the CNN tab will say it on first use
                say(f"vlmlab: could not fetch {name} in the background: {error}")

    thread = threading.Thread(target=fetch, name="vlmlab-fetch-weights", daemon=True)
    thread.start()
    return thread


def on_a_space() -> bool:
    """Whether the lab runs on a Hugging Face Space (Spaces set SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlmlab.models",
        description="See which models are on this machine, or fetch them before a lecture.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="list what is here and what is missing (offline)")
    fetch = commands.add_parser(
        "download", help="fetch models into the standard caches and check that each loads"
    )
    fetch.add_argument(
        "names", nargs="*", metavar="NAME",
        help="registry names (default: every topic's default model; `all`: every model)",
    )
    args = parser.parse_args(argv)
    if args.command == "status":
        print(where())
        print("\n".join(status_lines()))
        return 0
    names = [spec.name for spec in REGISTRY] if args.names == ["all"] else args.names or None
    try:
        ok = download(names)
    except LabError as error:  # an unknown name
        print(error, file=sys.stderr)
        return 2
    print()
    print("\n".join(status_lines(names or default_names())))
    return 0 if ok else 1
