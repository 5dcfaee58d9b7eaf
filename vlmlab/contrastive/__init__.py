"""Contrastive pretraining learned live: a tiny CLIP (Radford et al., ICML 2021, Fig. 3) trained
from scratch on captioned synthetic shapes, so the N×N image–text matrix turns diagonal while
the class watches; a few colour–shape combinations are never trained on and kept for zero-shot.

`train(...)` is a generator of frozen `Snapshot`s; a `ContrastiveRun` keeps the model between
calls, so stopping the generator pauses a run and passing the run back resumes it. The data
(`data.py`: captioned shapes) and the model (`model.py`: two encoders, the loss) are re-exported
here, the topic's front door; drawing is in `render.py`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from vlmlab import checks
from vlmlab.device import default_device
from vlmlab.errors import LabError
from vlmlab.contrastive.data import (  # noqa: F401 - the topic's front door
    COLOURS,
    HELD_OUT,
    HELD_OUT_COMBOS,
    IMAGE_SIDE,
    MAX_WORDS,
    NOISE,
    POSITIONS,
    Pairs,
    SHAPES,
    SIZES,
    TEMPLATES,
    TRAIN_COMBOS,
    VOCABULARY,
    WORD_INDEX,
    ZERO_SHOT_TEMPLATE,
    caption_for,
    draw_pairs,
    draw_shapes,
    tokenize,
    zero_shot_labels,
)
from vlmlab.contrastive.model import (  # noqa: F401 - the topic's front door
    ImageEncoder,
    MAX_LOGIT_SCALE,
    TextEncoder,
    TinyCLIP,
    clip_loss,
    count_parameters,
    foreground,
)


# ---------------------------------------------------------------------------------------------
# Settings and checks

MAX_STEPS = 3000
MAX_BATCH = 256  # the memory of a run stays small (a 256-image batch is 0.8 MB of pixels)
MIN_BATCH = 2
MIN_LR, MAX_LR = 1e-5, 10.0
MAX_SEED = 999_999
MAX_SECONDS = 600.0  # the most a run may be given (all its resumes together); the app gives less
DIVERGED_STEPS = 10  # steps of hopeless loss before a run stops itself
EVAL_PAIRS = 64  # matching accuracy is measured on this many distinct captions
ZERO_SHOT_IMAGES = 64  # held-out images classified zero-shot
DEFAULTS = dict(steps=300, batch_size=64, lr=3e-3, seed=0, every=10, learn_temperature=True)


def _finite_number(value, what: str) -> float:
    return checks.finite_number(value, what, text=True)


def _whole(value, what: str, low: int, high: int) -> int:
    return checks.whole_number(value, what, low, high, text=True)


@dataclass(frozen=True)
class Settings:
    """What a run is trained with, checked once."""

    steps: int = DEFAULTS["steps"]
    batch_size: int = DEFAULTS["batch_size"]
    lr: float = DEFAULTS["lr"]
    seed: int = DEFAULTS["seed"]
    every: int = DEFAULTS["every"]
    learn_temperature: bool = DEFAULTS["learn_temperature"]
    max_seconds: float = MAX_SECONDS

    def same_model(self, other: Settings) -> bool:
        """Whether a run made with `other` can go on with these settings: the batch size, seed
        and temperature setting make the model; steps, learning rate, interval and limit do not."""
        model = ("batch_size", "seed", "learn_temperature")
        return all(getattr(self, name) == getattr(other, name) for name in model)


def check_settings(
    *, steps, batch_size, lr, seed, every, learn_temperature=True, max_seconds=MAX_SECONDS
) -> Settings:
    """The settings as numbers, or a `LabError` that says which one is wrong and why."""
    steps = _whole(steps, "number of steps", 1, MAX_STEPS)
    batch_size = _whole(batch_size, "batch size", MIN_BATCH, MAX_BATCH)
    rate = _finite_number(lr, "learning rate")
    if not MIN_LR <= rate <= MAX_LR:
        raise LabError(f"The learning rate must be between {MIN_LR:g} and {MAX_LR:g}.")
    seed = _whole(seed, "seed", 0, MAX_SEED)
    every = _whole(every, "update interval (steps between pictures)", 1, MAX_STEPS)
    if not isinstance(learn_temperature, (bool, np.bool_)):
        raise LabError("Learnable temperature must be true or false.")
    limit = math.inf if max_seconds is None else _finite_number(max_seconds, "time limit")
    if max_seconds is not None and not 0 < limit <= MAX_SECONDS:
        raise LabError(f"The time limit must be more than 0 and at most {MAX_SECONDS:g} seconds.")
    return Settings(steps, batch_size, rate, seed, every, bool(learn_temperature), limit)


def check_zero_shot_index(index) -> int:
    """A held-out image's number, from 1 (as the tab shows it)."""
    return _whole(index, "held-out image number", 1, ZERO_SHOT_IMAGES)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One frozen look at a run (numpy on the CPU)."""

    step: int
    steps: int  # the step the run is heading for
    loss: float  # on the current batch
    logit_scale: float  # exp(t) = 1/τ
    similarity: np.ndarray  # (B, B) cosine similarities of the current batch (rows: images)
    images: np.ndarray  # (B, H, W, 3) uint8: the current batch
    captions: tuple[str, ...]  # (B,)
    matching_accuracy: float  # image→text, on EVAL_PAIRS distinct captions
    text_matching_accuracy: float  # text→image, on the same
    zero_shot_accuracy: float  # on the held-out colour–shape combinations
    zero_shot_images: np.ndarray  # (M, H, W, 3) uint8: held-out combinations only
    zero_shot_labels: tuple[str, ...]  # (K,) one prompt per colour–shape combination
    zero_shot_probabilities: np.ndarray  # (M, K) softmax over the prompts
    zero_shot_truth: np.ndarray  # (M,) index of the right prompt
    image_points: np.ndarray  # (P, 2) image embeddings of the evaluation pairs, projected
    text_points: np.ndarray  # (P, 2) their captions' embeddings, in the same projection
    point_colours: np.ndarray  # (P,) colour index of each pair
    history_steps: np.ndarray  # (S,) every step so far
    history_loss: np.ndarray  # (S,)
    history_scale: np.ndarray  # (S,) exp(t) after each step
    seconds: float  # training time of the run so far (data + forward/backward + evaluations)
    data_seconds: float
    train_seconds: float  # forward, backward and optimiser
    eval_seconds: float
    learn_temperature: bool
    stopped: str = ""  # why the run ended (finished, time limit, diverged), or "" while it goes

    @property
    def logits(self) -> np.ndarray:
        return self.similarity * self.logit_scale

    @property
    def duplicate_pairs(self) -> list[tuple[int, int]]:
        """Off-diagonal (i, j) whose captions are the same text: false negatives."""
        return false_negatives(self.captions)


def false_negatives(captions) -> list[tuple[int, int]]:
    """Every (i, j), i ≠ j, where caption j is word for word caption i: the loss still counts
    image i against text j as a wrong pair, though it is a right one."""
    where: dict[str, list[int]] = {}
    for i, caption in enumerate(captions):
        where.setdefault(caption, []).append(i)
    return [(i, j) for same in where.values() for i in same for j in same if i != j]


# A tiny model gains little from a second CPU thread, and runs train side by side (the tab allows
# two at once): on a busy 2-core machine, OpenMP threads of two runs spinning against each other
# made a step 8× slower than one thread each (measured). The count is per calling thread, and is
# put back after each step, so the rest of the lab keeps its own.
RUN_THREADS = 1


@contextlib.contextmanager
def _cpu_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_build_lock = threading.Lock()  # model initialisation draws from torch's global generator


@dataclass(eq=False)
class ContrastiveRun:
    """A run's live state (model, optimiser, data generator, history): pause by not iterating,
    resume by passing it back to `train`, reset by making a new one."""

    settings: Settings
    model: TinyCLIP = field(init=False)
    step: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    stopped: str = ""  # set when the run can go no further (diverged, time limit)
    history: list[tuple[int, float, float]] = field(default_factory=list)
    device: torch.device = field(default_factory=default_device)

    def __post_init__(self):
        s = self.settings
        with _build_lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self.model = TinyCLIP(learn_temperature=s.learn_temperature).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=s.lr)
        self.data = np.random.default_rng(s.seed)  # training batches
        fixed = np.random.default_rng([s.seed, 1])  # the evaluation sets, fixed for the run
        self.eval_pairs = draw_pairs(fixed, EVAL_PAIRS, distinct=True)
        self.zero_shot = draw_pairs(fixed, ZERO_SHOT_IMAGES, held_out=True)
        self.labels = zero_shot_labels()
        shapes, colours = len(SHAPES), self.zero_shot.colours
        self.zero_shot_truth = colours * shapes + self.zero_shot.shapes
        self._label_ids = tokenize(self.labels).to(self.device)
        self._last: tuple = ()
        self._stuck = 0  # steps in a row with the loss at or far above guessing

    def state(self) -> dict:
        """Everything that carries the run on, on the CPU (model, optimiser, data generator,
        history): another process, on its own device, continues it exactly (`from_state`).
        The evaluation sets are not in it: the seed draws them again."""
        batch, cosines, loss = self._last or (None, None, None)
        return {
            "settings": self.settings,
            "model": _on_cpu(self.model.state_dict()),
            "optimizer": _on_cpu(self.optimizer.state_dict()),
            "data": self.data.bit_generator.state,
            "counts": (self.step, self.seconds, self.data_seconds, self.train_seconds,
                       self.eval_seconds, self._stuck),  # fmt: skip
            "stopped": self.stopped,
            "history": list(self.history),
            "last": () if batch is None else (batch, cosines.detach().cpu(), loss),
        }

    def load_state(self, state: dict) -> None:
        """Take over a run's `state()` (same settings), on this run's device."""
        self.settings = state["settings"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data.bit_generator.state = state["data"]
        (self.step, self.seconds, self.data_seconds, self.train_seconds, self.eval_seconds,
         self._stuck) = state["counts"]  # fmt: skip
        self.stopped = state["stopped"]
        self.history = list(state["history"])
        last = state["last"]
        self._last = (last[0], last[1].to(self.device), last[2]) if last else ()

    @classmethod
    def from_state(cls, state: dict) -> ContrastiveRun:
        """A run continuing where `state` (a `state()`) left off, on this process's device."""
        run = cls(state["settings"])
        run.load_state(state)
        return run

    def pixels(self, images: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
        return tensor.float().div_(255)  # (B, 3, H, W)

    def train_step(self) -> None:
        with _cpu_threads(RUN_THREADS):
            self._train_step()

    def _train_step(self) -> None:
        started = time.perf_counter()
        batch = draw_pairs(self.data, self.settings.batch_size)
        pixels, ids = self.pixels(batch.images), tokenize(batch.captions).to(self.device)
        drawn = time.perf_counter()
        self.model.train()
        logits = self.model(pixels, ids)  # (B, B)
        loss = clip_loss(logits)
        cosines = logits.detach() / self.model.scale().detach()  # (B, B)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():  # the paper clips the logit scale at 100
            self.model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))
        value = float(loss.detach())  # waits for the device
        done = time.perf_counter()
        self.step += 1
        self.history.append((self.step, value, float(self.model.scale().detach())))
        self.data_seconds += drawn - started
        self.train_seconds += done - drawn
        self.seconds += done - started
        self._last = (batch, cosines, value)
        self.stopped = self._diverged(value)

    def _diverged(self, value: float) -> str:
        """Why the run cannot learn any more, or "": the loss is NaN or infinite, or it has sat
        at guessing level (every similarity alike) or far above it for DIVERGED_STEPS steps."""
        rate = f"a learning rate of {self.settings.lr:g} is too large for this model"
        advice = "Reset and try a smaller one, such as 0.003."
        if not math.isfinite(value) or not all(
            bool(torch.isfinite(p).all()) for p in self.model.parameters()
        ):
            return (
                f"The loss became {value:g} at step {self.step}: the run diverged ({rate}), "
                f"so it stopped itself. {advice}"
            )
        chance = math.log(self.settings.batch_size)
        stuck = abs(value - chance) < 1e-3 or value > 2 * chance
        self._stuck = self._stuck + 1 if stuck else 0
        if self._stuck >= DIVERGED_STEPS:
            how = "sits at ln N, pure guessing" if value <= 2 * chance else "is far above guessing"
            return (
                f"The loss {how} ({value:.3f}) for {DIVERGED_STEPS} steps by step {self.step}: "
                f"the run diverged ({rate}), so it stopped itself. {advice}"
            )
        return ""

    def snapshot(self) -> Snapshot:
        with _cpu_threads(RUN_THREADS):
            return self._snapshot()

    @torch.no_grad()
    def _snapshot(self) -> Snapshot:
        started = time.perf_counter()
        model = self.model.eval()
        if not self._last:  # before the first step: the first batch, as the model starts
            state = self.data.bit_generator.state
            batch = draw_pairs(self.data, self.settings.batch_size)
            self.data.bit_generator.state = state  # the first step draws the same batch
            ids = tokenize(batch.captions).to(self.device)
            logits = model(self.pixels(batch.images), ids)
            self._last = (batch, logits / model.scale(), float(clip_loss(logits)))
        batch, cosines, loss = self._last
        scale = float(model.scale())
        ev = self.eval_pairs
        I_e = model.encode_images(self.pixels(ev.images))  # (P, D)
        T_e = model.encode_texts(tokenize(ev.captions).to(self.device))  # (P, D)
        sims = I_e @ T_e.T  # (P, P)
        truth = torch.arange(len(ev.captions), device=sims.device)
        matching = float((sims.argmax(1) == truth).float().mean())
        text_matching = float((sims.argmax(0) == truth).float().mean())
        Z_i = model.encode_images(self.pixels(self.zero_shot.images))  # (M, D)
        Z_t = model.encode_texts(self._label_ids)  # (K, D)
        probabilities = (Z_i @ Z_t.T * scale).softmax(-1).cpu().numpy()  # (M, K)
        zero_shot = float((probabilities.argmax(1) == self.zero_shot_truth).mean())
        image_points, text_points = project_pairs(I_e.cpu().numpy(), T_e.cpu().numpy())
        history = np.array(self.history, np.float64).reshape(-1, 3)
        self.eval_seconds += time.perf_counter() - started
        self.seconds += time.perf_counter() - started
        return Snapshot(
            step=self.step,
            steps=self.settings.steps,
            loss=loss,
            logit_scale=scale,
            similarity=cosines.float().cpu().numpy(),
            images=batch.images,
            captions=batch.captions,
            matching_accuracy=matching,
            text_matching_accuracy=text_matching,
            zero_shot_accuracy=zero_shot,
            zero_shot_images=self.zero_shot.images,
            zero_shot_labels=self.labels,
            zero_shot_probabilities=probabilities,
            zero_shot_truth=self.zero_shot_truth,
            image_points=image_points,
            text_points=text_points,
            point_colours=ev.colours,
            history_steps=history[:, 0].astype(np.int64),
            history_loss=history[:, 1],
            history_scale=history[:, 2],
            seconds=self.seconds,
            data_seconds=self.data_seconds,
            train_seconds=self.train_seconds,
            eval_seconds=self.eval_seconds,
            learn_temperature=self.settings.learn_temperature,
            stopped=self.stopped,
        )


def _on_cpu(value):
    """A state dict (nested dicts and lists of tensors) with every tensor copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def project_pairs(images: np.ndarray, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets of embeddings in one 2-D plane: their first two principal components."""
    both = np.concatenate([images, texts]).astype(np.float64)  # (2P, D)
    centred = both - both.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ vt[:2].T  # (2P, 2)
    plane *= np.sign(plane[np.abs(plane).argmax(0), [0, 1]])  # a stable orientation
    return plane[: len(images)], plane[len(images) :]


def new_run(**settings) -> ContrastiveRun:
    """A fresh run (a new model) with checked settings; see `check_settings` for the names."""
    return ContrastiveRun(check_settings(**{**DEFAULTS, **settings}))


def train(
    *,
    steps: int = DEFAULTS["steps"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    seed: int = DEFAULTS["seed"],
    every: int = DEFAULTS["every"],
    learn_temperature: bool = DEFAULTS["learn_temperature"],
    max_seconds: float | None = MAX_SECONDS,
    run: ContrastiveRun | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Snapshot]:
    """Train a tiny CLIP, yielding a `Snapshot` before the first step and every `every` steps.

    Same seed, same losses (on the CPU). Pass `run` (from `new_run` or an earlier call) to
    resume it up to `steps` in all; stop iterating (or let `should_stop()` say True) to pause.
    The run ends on its own at `steps`, at its time limit (`max_seconds` of training in all;
    None for none), or when the loss diverges, with the reason in the last snapshot's `stopped`.
    """
    settings = check_settings(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, every=every,
        learn_temperature=learn_temperature, max_seconds=max_seconds,
    )  # fmt: skip
    if run is None:
        run = ContrastiveRun(settings)
    elif not run.settings.same_model(settings):
        raise LabError(
            "A paused run keeps its batch size, seed and temperature setting; "
            "press Reset to start one with new ones."
        )
    run.settings = settings
    yield from _advance(run, settings.every, should_stop)


def run_for(run: ContrastiveRun | None, settings: Settings) -> ContrastiveRun:
    """The run that Train goes on with: `run` where it has the same model as `settings` (it
    resumes), else a new one (a new batch size, seed or temperature setting is a new model)."""
    return run if run is not None and run.settings.same_model(settings) else ContrastiveRun(settings)


def _advance(run: ContrastiveRun, every: int, should_stop) -> Iterator[Snapshot]:
    s = run.settings
    if run.stopped or run.step >= s.steps:
        if not run.stopped:
            run_end = f"The run has done its {run.step} steps; raise the steps to go on, or reset."
            yield _with_reason(run.snapshot(), run_end)
        else:
            yield run.snapshot()
        return
    for group in run.optimizer.param_groups:
        group["lr"] = s.lr
    yield run.snapshot()
    while True:
        if should_stop is not None and should_stop():
            return
        run.train_step()
        if not run.stopped and run.seconds >= s.max_seconds:
            run.stopped = (
                f"The run reached its time limit of {s.max_seconds:g} seconds at step "
                f"{run.step}; reset to start another."
            )
        if run.stopped:
            yield run.snapshot()
            return
        if run.step >= s.steps:
            yield _with_reason(run.snapshot(), f"Finished: {run.step} steps.")
            return
        if run.step % every == 0:
            yield run.snapshot()


def _with_reason(snapshot: Snapshot, reason: str) -> Snapshot:
    import dataclasses

    return dataclasses.replace(snapshot, stopped=reason)
