"""The contrastive playground in Jupyter: train a tiny CLIP and watch its matrix turn diagonal.

Same engine calls as the Gradio tab (`vlmlab.contrastive`, `vlmlab.contrastive.render`). Training
runs in a background thread so the notebook stays responsive; Stop pauses, Train resumes.
"""

from __future__ import annotations

import dataclasses
import html
import threading

import ipywidgets as widgets

from vlmlab import contrastive
from vlmlab.contrastive.render import (
    REAL_CLIP,
    describe,
    describe_false_negatives,
    describe_zero_shot,
    draw_curves,
    draw_embedding_plane,
    draw_matrix,
    zero_shot_picture,
    zero_shot_ranking,
)
from vlmlab.errors import LabError
from vlmlab.render import error_html, png_bytes

from .pixels import row
from .figures import Keepable
from .links import Linkable




class ContrastivePlayground(Linkable, Keepable, widgets.VBox):
    """Controls (batch size, learning rate, steps, seed, temperature) and live views.

    `train(wait=True)` trains in the calling thread (what a notebook run start to end wants);
    the Train button trains in a background thread.
    """

    # widget.link() and ContrastivePlayground.from_link(link): see widgets/links.py
    LINK_TAB = "contrastive"
    LINK_INIT = {"steps": "steps", "batch_size": "batch_size", "seed": "seed"}
    LINK_CONTROLS = {"steps": "steps", "batch_size": "batch_size", "seed": "seed", "lr": "lr", "learn_temperature": "learn_temperature"}
    LINK_PHOTO = False

    def __init__(self, steps: int = 300, batch_size: int = 64, seed: int = 0, every: int = 25):
        d = contrastive.DEFAULTS
        self.batch_size = widgets.BoundedIntText(
            batch_size, min=contrastive.MIN_BATCH, max=contrastive.MAX_BATCH, description="batch N"
        )
        self.lr = widgets.BoundedFloatText(
            d["lr"], min=contrastive.MIN_LR, max=contrastive.MAX_LR, step=0.001,
            description="learning rate",
        )  # fmt: skip
        self.steps = widgets.BoundedIntText(
            steps, min=1, max=contrastive.MAX_STEPS, description="steps"
        )
        self.seed = widgets.BoundedIntText(seed, min=0, max=contrastive.MAX_SEED, description="seed")
        self.learn_temperature = widgets.Checkbox(True, description="learnable temperature")
        self.every = widgets.BoundedIntText(every, min=1, max=100, description="update every")
        self.train_button = widgets.Button(description="Train", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", button_style="danger")
        self.reset_button = widgets.Button(description="Reset")
        self.status = widgets.HTML()
        self.matrix = widgets.Image(format="png")
        self.notes = widgets.HTML()
        self.curves = widgets.Image(format="png")
        self.plane = widgets.Image(format="png")
        self.picked = widgets.IntSlider(
            1, min=1, max=contrastive.ZERO_SHOT_IMAGES, description="held-out"
        )
        self.picture = widgets.Image(format="png")
        self.ranking = widgets.HTML()
        self.run: contrastive.ContrastiveRun | None = None
        self.snapshot: contrastive.Snapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.train_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.reset_button.on_click(lambda _: self.reset())
        self.picked.observe(lambda _: self._show_zero_shot(), "value")
        controls = widgets.VBox(
            [self.batch_size, self.lr, self.steps, self.seed, self.learn_temperature, self.every,
             widgets.HBox([self.train_button, self.stop_button, self.reset_button])]
        )  # fmt: skip
        super().__init__(
            [
                row([controls, widgets.VBox([self.status, self.matrix, self.notes])]),
                row([self.curves, self.plane]),
                row([widgets.VBox([self.picked, self.picture]), self.ranking]),
                widgets.HTML(f"<p>{html.escape(REAL_CLIP)}</p>"),
            ]
        )

    def _settings(self) -> contrastive.Settings:
        names = ("steps", "batch_size", "lr", "seed", "every", "learn_temperature")
        return contrastive.check_settings(**{name: getattr(self, name).value for name in names})

    def train(self, wait: bool = True) -> contrastive.Snapshot | None:
        """Train (or resume) up to `steps`, updating the views; returns the last snapshot."""
        try:
            settings = self._settings()
            self.run = contrastive.run_for(self.run, settings)
            self._stop.clear()
            for snapshot in contrastive.train(
                **dataclasses.asdict(settings), run=self.run, should_stop=self._stop.is_set
            ):
                self.show(snapshot)
            if self._stop.is_set() and self.snapshot is not None:
                self.status.value = f"<p>{html.escape(describe(self.snapshot, paused=True))}</p>"
        except LabError as error:
            self.status.value = error_html(error)
        return self.snapshot

    def start(self) -> None:
        """Train in a background thread (the Train button)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self.train, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Pause: the loop stops before its next step; Train resumes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def reset(self) -> None:
        self.stop()
        self.run = self.snapshot = None
        self.status.value = "Reset: press Train to start a new model."

    def show(self, snapshot: contrastive.Snapshot) -> None:
        self.snapshot = snapshot
        self.status.value = f"<p>{html.escape(describe(snapshot))}</p>"
        self.matrix.value = png_bytes(draw_matrix(snapshot))
        self.notes.value = f"<p>{html.escape(describe_false_negatives(snapshot))}</p>"
        self.curves.value = png_bytes(draw_curves(snapshot))
        self.plane.value = png_bytes(draw_embedding_plane(snapshot))
        self._show_zero_shot()

    def _show_zero_shot(self) -> None:
        if self.snapshot is None:
            return
        index = self.picked.value - 1
        self.picture.value = png_bytes(zero_shot_picture(self.snapshot, index))
        rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{p:.1%}</td></tr>"
            for label, p in zero_shot_ranking(self.snapshot, index)
        )
        words = html.escape(describe_zero_shot(self.snapshot, index))
        self.ranking.value = f"<table>{rows}</table><p>{words}</p>"
