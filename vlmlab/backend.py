"""The one seam between the app's tabs and the engine's model calls.

By default the engine runs in this process, exactly as the tabs always called it (`InProcess`:
a Space, `make run`, the notebooks). `python app.py --ray` swaps in `vlmlab.serve.RayBackend`,
which sends the same calls to Ray Serve deployments, one per model family. Either way a call
takes plain values (a photo, settings) and returns the engine's own frozen results, so a tab
cannot tell the two apart; nothing of Gradio crosses. This module never imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from PIL import Image


class InProcess:
    """The engine in this process: each method is the engine call the tabs made before."""

    remote = False  # models load here (tabs may draw from a loaded model directly)

    def load(self, loader: Callable, *args, **kwargs) -> Any:
        """`loader(*args, **kwargs)` (e.g. `models.load_model`) here, with its progress, so the
        first answer does not wait in silence. Remote back ends load in their replicas: None."""
        return loader(*args, **kwargs)

    def classify_many(
        self, images: Sequence[Image.Image], models: Sequence[str], top_ks: Sequence[int]
    ) -> list:
        """CNN top-k for many photos, one forward per network (`cnn.classify_many`)."""
        from vlmlab import cnn

        return cnn.classify_many(list(images), list(models), list(top_ks))

    def inspect_vit(self, image: Image.Image, model: str):
        """Everything one ViT forward shows about a photo (`vit.inspect_vit`)."""
        from vlmlab import vit

        return vit.inspect_vit(image, model)

    def zero_shot_batch(self, requests: Sequence) -> list:
        """CLIP zero-shot for many callers, each result (or its `LabError`) in its place
        (`clip.zero_shot_batch`)."""
        from vlmlab import clip

        return clip.zero_shot_batch(list(requests))

    def caption_stream(self, image: Image.Image, **settings) -> Iterator:
        """The growing caption, then the final one (`captioning.caption_stream`)."""
        from vlmlab import captioning

        return captioning.caption_stream(image, **settings)

    def answer_questions(self, image: Image.Image, questions, *, model: str, top_k: int):
        """Every question's answers about a photo (`vqa.answer_questions`)."""
        from vlmlab import vqa

        return vqa.answer_questions(image, questions, model=model, top_k=top_k)

    def train_contrastive(self, run, *, should_stop=None, **settings) -> Iterator:
        """Train (or resume) `run`, a `contrastive.ContrastiveRun`, yielding its snapshots
        (`contrastive.train`'s settings); `run` keeps the progress for the next call."""
        from vlmlab import contrastive

        return contrastive.train(run=run, should_stop=should_stop, **settings)

    def close(self) -> None:
        """Nothing to release in process."""


_current: Any = InProcess()


def backend():
    """The back end the tabs call now (`InProcess` unless `use` chose another)."""
    return _current


def use(chosen) -> Any:
    """Make `chosen` the back end for every tab; returns the one it replaces."""
    global _current
    previous, _current = _current, chosen
    return previous
