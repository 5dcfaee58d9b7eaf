"""A long-running lab keeps its memory flat (glibc's malloc arenas and free pages)."""

from __future__ import annotations

import ctypes
import sys
import threading
import time


def keep_memory_flat(arenas: int = 2, every_s: float = 10.0) -> None:
    """glibc gives every serving thread its own malloc arena and keeps freed pages for reuse, so
    a busy lab's resident memory creeps up. Two arenas, and a daemon thread that hands free
    pages back to the system every few seconds (`malloc_trim`), keep it flat. Must run before
    other threads start."""
    if not sys.platform.startswith("linux"):
        return
    if any(thread.name == "malloc-trim" for thread in threading.enumerate()):
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
