"""The one kind of error a vlmlab user sees: a plain sentence that says what to do.

Every engine check raises a subclass of `LabError` (itself a `ValueError`); the Gradio app and
the Jupyter widgets show its message as it is, and never a traceback.
"""

from __future__ import annotations


class LabError(ValueError):
    """A problem with the user's input or choice, explained in one sentence."""


class ModelUnavailableError(LabError):
    """A model that cannot be had here: not cached and no way to download it."""


def user_message(error: BaseException) -> str | None:
    """The sentence to show a user for `error`, or None for a fault of ours (log it instead).

    Causes are followed too: libraries such as torch.fx wrap the exceptions raised inside them
    (a CUDA out-of-memory error inside a RuntimeError, say).
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, LabError):
            return str(error)
        if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            import torch

            torch.cuda.empty_cache()
            return (
                "The GPU ran out of memory; try a smaller model or a smaller photo, then run again."
            )
        error = error.__cause__ or error.__context__
    return None
