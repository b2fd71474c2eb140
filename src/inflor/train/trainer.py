"""The training loop behind ``inflor train``.

One ``Trainer`` per run: ``setup`` builds the model, optimizer and schedule (``build.build_run``)
and the data (``inflor.data.build_datasets``) from a validated config (``inflor.train.config``);
``fit`` trains and tests once per epoch, writing ``config.yaml``, ``metrics.csv``,
``summary.json``, TensorBoard events and checkpoints into the run directory (``inflor.runs``).
The loss objective and its terms are declared in ``objective``; one epoch is ``loop.train_epoch``,
testing ``evaluate.evaluate``; the ESG schedule and snapshots are ``callbacks``.

Reproducibility: weights are initialised from ``train.seed``; at the start of epoch e every
random generator (torch, numpy, python, the sampler, the DataLoader workers) is re-seeded from
(seed, e, rank), so the batches and augmentations of an epoch depend only on (seed, epoch) and a
resumed run sees exactly what an uninterrupted one would. Checkpoints also store the generator
states.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from inflor.data import build_datasets, static_info
from inflor.errors import (CheckpointError, InflorError, NonFiniteLossError, RunError,  # noqa: F401  (re-exported)
                           message)
from inflor.logs import progress
from inflor.losses import TASK_LOSSES  # noqa: F401  (re-exported)
from inflor.runs import checkpoint as ckpt_mod
from inflor.runs.config_file import write_config_text
from inflor.runs.layout import RunDir
from inflor.runs.metrics import write_metrics
from inflor.runs.summary import write_summary

from . import warmstart
from .build import (ShardSampler, apply_activation_checkpointing, autocast, build_run,  # noqa: F401  (re-exported)
                    check_data_config, check_model_name, epoch_seed, make_loaders, make_model, model_kwargs,
                    resolve_device, seed_everything, set_deterministic)
from .callbacks import EsgSchedule, SnapshotCallback, StopRun, esg_modules  # noqa: F401  (re-exported)
from .config import ConfigError, dump_config  # noqa: F401  (re-exported)
from .distributed import (DistInfo, barrier, bare_model, broadcast_object, cleanup, init_distributed,  # noqa: F401
                          peer_failure, per_process_batch)
from .evaluate import SpikeCounter, evaluate  # noqa: F401  (re-exported)
from .host_allocator import use_host_allocator
from .interrupts import Interrupts
from .loop import EpochResult, train_epoch  # noqa: F401  (re-exported)
from .objective import METRIC_FIELDS, compute_loss, metric_fields, needs_stats  # noqa: F401  (re-exported)
from .optim import EpochSchedule, build_optimizer, make_scaler  # noqa: F401  (re-exported)
from .outputs import TensorBoard, epoch_line, epoch_row, fmt, progress_mode, summary_doc
from .smoke import smoke_test  # noqa: F401  (re-exported)
from .stages import run_stages
from .state import checkpoint_state, restore

__all__ = ["Trainer", "RunError", "NonFiniteLossError", "StopRun", "METRIC_FIELDS", "build_optimizer",
           "EpochSchedule", "resolve_device", "seed_everything", "epoch_seed", "compute_loss", "smoke_test"]


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    """``metrics.csv`` with the trainer's columns (``inflor.runs.metrics``)."""
    write_metrics(path, rows, metric_fields())


class Trainer:
    """Train one run. ``cfg`` must come from ``config.validate_config`` (or ``load_config``).

    Args:
        out_dir: the run directory.
        resume: continue from ``out_dir/checkpoints/last.pt``.
        callbacks: callables ``fn(trainer, epoch, row)`` called after each epoch's checkpoint;
            raising ``StopRun`` ends the run there (tests use it to simulate a kill).
        log: where progress lines go (default: the ``"inflor"`` logger, :mod:`inflor.logs`).
    """

    def __init__(self, cfg: dict, out_dir: str | os.PathLike, resume: bool = False,
                 callbacks: Iterable[Callable] = (), log: Callable[[str], None] | None = None):
        self.cfg, self.out, self.resume = cfg, Path(out_dir), resume
        self.callbacks = list(callbacks)
        self._log = log or progress
        self.dist = DistInfo()
        self.metrics: list[dict] = []
        self.best_acc: float | None = None
        self.best_epoch: int | None = None
        self.start_epoch = 0
        self.elapsed_before = 0.0
        self.status = "created"
        self.tb: TensorBoard | None = None

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            self._log(msg)

    @property
    def run(self) -> RunDir:
        return RunDir(self.out)

    @property
    def ckpt_dir(self) -> Path:
        return self.run.checkpoints

    @property
    def tb_steps(self):
        return self.tb.steps if self.tb is not None else None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything; configuration problems are raised before any data is read."""
        cfg, t = self.cfg, self.cfg["train"]
        self.device = resolve_device(t["device"])
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        set_deterministic(t["deterministic"], self.device)
        self.host_allocator = use_host_allocator(t["host_allocator"], self.device, warn=self.log)
        # the config's batch sizes are global (as the papers state them): each process loads its share
        self.batch_size = per_process_batch(cfg["data"]["batch_size"], self.dist.world_size)
        self.test_batch_size = per_process_batch(cfg["data"]["test_batch_size"] or cfg["data"]["batch_size"],
                                                 self.dist.world_size, exact=False)
        if self.dist.enabled:
            self.log(f"global batch {cfg['data']['batch_size']} = {self.dist.world_size} processes × "
                     f"{self.batch_size}")
        check_model_name(cfg)
        check_data_config(cfg)
        if self.resume:
            if not self.run.last.is_file():
                raise RunError(f"nothing to resume in {self.out}: {self.run.last} does not exist "
                               "(the run did not finish an epoch); start it again without --resume")
        elif broadcast_object(self.dist.is_main and self.run.last.exists(), self.dist):
            raise RunError(f"{self.out} already holds a run (checkpoints/last.pt); pass --resume to "
                           "continue it or choose another --out")
        # model first (validates its options and a warm start), from the static description of the data
        static = static_info(cfg["data"]["name"], root=cfg["data"]["root"], **cfg["data"]["options"])
        built = build_run(cfg, static, self.device, warm_start=not self.resume)
        # data (may raise FileNotFoundError naming the missing files)
        self.train_ds, self.test_ds, self.info = build_datasets(cfg["data"]["name"], root=cfg["data"]["root"],
                                                                **cfg["data"]["options"])
        if (self.info.num_classes, tuple(self.info.input_shape), self.info.timesteps) != \
                (static.num_classes, tuple(static.input_shape), static.timesteps):
            built = build_run(cfg, self.info, self.device, warm_start=not self.resume)
        self.model, self.optimizer, self.schedule = built.model, built.optimizer, built.schedule
        self.model_name, self.model_options, self.init_info = built.model_name, built.model_options, built.init_info
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.scaler = make_scaler(cfg, self.device)
        if self.resume:
            restore(self)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        self.train_sampler, self.loader_gen, self.train_loader, self.test_loader = make_loaders(
            self.train_ds, self.test_ds, cfg, self.dist, self.batch_size, self.test_batch_size,
            pin_memory=self.device.type == "cuda")
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_config_text(self.out, dump_config(cfg))
            if t["tensorboard"]:
                self.tb = TensorBoard(self.run.tb, self.start_epoch, self.steps_per_epoch())
        barrier(self.dist)
        if self.init_info is not None:
            self.init_info = warmstart.evaluate_init(self)

    def steps_per_epoch(self) -> int:
        n, m = len(self.train_loader), self.cfg["train"]["max_steps_per_epoch"]
        return min(n, m) if m else n

    # ------------------------------------------------------------------ one epoch
    def _seed_epoch(self, epoch: int) -> None:
        s = epoch_seed(self.cfg["train"]["seed"], epoch, self.dist.rank)
        seed_everything(s)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(s)
        self.train_sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(s)

    def train_epoch(self, epoch: int) -> EpochResult:
        return train_epoch(self, epoch)

    @torch.no_grad()
    def evaluate(self) -> dict:
        return evaluate(self.ddp, self.test_loader, self.device, self.cfg, self.dist)

    # ------------------------------------------------------------------ the run
    def fit(self) -> dict:
        """Train from ``start_epoch`` to ``train.epochs``; returns the summary. SIGINT and SIGTERM
        end the run at a consistent point (``inflor.train.interrupts``)."""
        with Interrupts() as self._interrupts:
            return self._fit()

    def _fit(self) -> dict:
        cfg, t = self.cfg, self.cfg["train"]
        self.progress = progress_mode(cfg) if self.dist.is_main else "none"
        epochs = t["epochs"]
        t_start = time.perf_counter()
        if self.start_epoch == 0:
            self.log(f"run {self.out}: {self.model_name} ({self.n_params / 1e6:.3f} M params) on "
                     f"{self.info.name} ({len(self.train_ds)} train / {len(self.test_ds)} test), "
                     f"{epochs} epochs, device {self.device} (host allocator {self.host_allocator})"
                     + (f", {self.dist.world_size} processes" if self.dist.enabled else ""))
        self.status = "running"
        stop_after = t["stop_after_epochs"]
        esg = EsgSchedule(self.model, epochs)
        if t["snapshots"]:   # per-layer statistics at chosen epochs (inflor.analysis.snapshot)
            snap = SnapshotCallback(t["snapshots"], t["snapshot_batches"])
            snap.before_training(self)
            self.callbacks.insert(0, snap)
        self._unsaved = None      # the last finished epoch's checkpoint when save_every skipped it
        self.saved_epoch = self.start_epoch      # the epoch last.pt holds
        interrupts = self._interrupts
        try:
            for epoch in range(self.start_epoch, epochs):
                if stop_after is not None and epoch >= stop_after:
                    self.status = "stopped"
                    break
                te = time.perf_counter()
                self._seed_epoch(epoch)
                lr = self.schedule.set_epoch(epoch)
                k = esg.set_epoch(epoch)
                res = self.train_epoch(epoch)
                last = epoch == epochs - 1
                test = self.evaluate() if ((epoch + 1) % t["eval_every"] == 0 or last) else None
                row = epoch_row(epoch, res, test, lr, k, time.perf_counter() - te)
                with interrupts.deferred():   # a signal waits until the epoch is recorded and saved
                    improved = test is not None and (self.best_acc is None or test["acc"] > self.best_acc)
                    if improved:
                        self.best_acc, self.best_epoch = test["acc"], epoch + 1
                    self.metrics.append(row)
                    self._epoch_outputs(row, epoch, improved, last, t_start)
                for cb in self.callbacks:
                    cb(self, epoch, row)
            else:
                self.status = "completed"
        except StopRun:
            self.status = "stopped"
        except BaseException as e:
            with interrupts.deferred():   # a second signal must not cut the final writes short
                failure = self._record_failure(e, t_start)
                if failure is None:
                    raise
                raise failure from e
        summary = self._write_summary(t_start)
        if self.status == "completed":
            self.log(f"done: best test acc {fmt(self.best_acc)} (epoch {self.best_epoch}), final "
                     f"{fmt(self.metrics[-1]['test_acc'] if self.metrics else None)}; "
                     f"{summary['wall_time']:.1f}s; outputs in {self.out}")
        else:
            self.log(f"stopped after epoch {len(self.metrics)} of {epochs}; continue with --resume --out {self.out}")
        self._close()
        return summary

    def _record_failure(self, e: BaseException, t_start: float) -> InflorError | None:
        """Record a run that ends on ``e``: the last finished epoch's checkpoint if it is not
        written yet (on an interrupt), ``summary.json`` with the status and the error. Returns the
        user-facing error to raise instead of ``e``, or None to raise ``e`` itself."""
        done = len(self.metrics)
        resume = f"continue with: inflor train --out {self.out} --resume"
        if isinstance(e, KeyboardInterrupt):   # Interrupted (SIGINT / SIGTERM), or Ctrl-C off the main thread
            self._save_unsaved()
            why = f"interrupted by {e or 'SIGINT'}"
            self._end("interrupted", t_start, why)
            self.log(f"{why} after epoch {done} of {self.cfg['train']['epochs']}; {resume}")
            return None
        if isinstance(e, NonFiniteLossError):
            self._end("nonfinite", t_start, str(e))
            return None
        failure = None
        if isinstance(e, (CheckpointError, OSError)):   # a full disk, a lost mount
            what = message(e) if isinstance(e, CheckpointError) else f"cannot write to {self.out} ({e})"
            failure = RunError(f"{what}; the run stopped in epoch {done}, its last checkpoint holds epoch "
                               f"{self.saved_epoch}; {resume}")
        elif not isinstance(e, InflorError) and (lost := peer_failure(e, self.dist)) is not None:
            failure = RunError(f"process {self.dist.rank} of {self.dist.world_size}: another process of the "
                               f"distributed run stopped or lost its connection ({lost}); stopped after epoch "
                               f"{done}; the checkpoints in {self.ckpt_dir} are intact; {resume}")
        error = failure or e
        self._end("failed", t_start, message(error) if isinstance(error, InflorError) else f"{type(e).__name__}: {e}")
        return failure

    def _end(self, status: str, t_start: float, error: str) -> None:
        """Record a run that ends early: ``summary.json`` with ``status`` and ``error`` (as far as the
        disk allows: a failure to write it is logged, not raised over the error that ended the
        run), then close the TensorBoard writers."""
        self.status = status
        try:
            self._write_summary(t_start, error=error)
        except OSError as e:
            self.log(f"could not write {self.run.summary}: {e}")
        self._close()

    def _save_unsaved(self) -> None:
        """Write the last finished epoch's checkpoint if ``train.save_every`` skipped it."""
        if self._unsaved is not None and self.dist.is_main:
            ckpt_mod.save_checkpoint(self._unsaved, self.run.last)
            self.saved_epoch = len(self.metrics)
        self._unsaved = None

    def _epoch_outputs(self, row: dict, epoch: int, improved: bool, last: bool, t_start: float) -> None:
        t = self.cfg["train"]
        if self.dist.is_main:
            write_metrics_csv(self.run.metrics, self.metrics)
            if self.tb is not None:
                self.tb.epoch(row, epoch)
            if self.progress != "none":
                self.log(epoch_line(row, t["epochs"], self.best_acc))
            state = self.checkpoint_state(epoch + 1, self.elapsed_before + time.perf_counter() - t_start)
            if (epoch + 1) % t["save_every"] == 0 or last or improved or \
                    (t["stop_after_epochs"] is not None and epoch + 1 >= t["stop_after_epochs"]):
                # best.pt first: a failure between the two leaves best.pt ahead of last.pt, which a
                # resume re-creates; the other order could leave last.pt naming a best epoch that
                # best.pt never received
                if improved:
                    ckpt_mod.save_checkpoint(state, self.run.best)
                ckpt_mod.save_checkpoint(state, self.run.last)
                self._unsaved, self.saved_epoch = None, epoch + 1
            else:   # kept (serialised) so that an interrupt can still save this epoch
                self._unsaved = ckpt_mod.checkpoint_bytes(state)
        barrier(self.dist)

    def checkpoint_state(self, epochs_done: int, elapsed: float) -> dict:
        return checkpoint_state(self, epochs_done, elapsed)

    def _write_summary(self, t_start: float, error: str | None = None) -> dict:
        summary = summary_doc(self, self.elapsed_before + time.perf_counter() - t_start, error)
        if self.dist.is_main:
            write_summary(self.out, summary)
        return summary

    def _close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        self.tb = None


def run_training(cfg: dict, out_dir, resume: bool = False, callbacks=(), log=None) -> dict:
    """Set up and run a ``Trainer`` (each stage's in turn for a recipe with ``stages``); always
    tears the process group down."""
    if cfg.get("stages"):
        return run_stages(cfg, out_dir, Trainer, resume=resume, callbacks=callbacks, log=log)
    tr = Trainer(cfg, out_dir, resume=resume, callbacks=callbacks, log=log)
    finished = False
    try:
        tr.setup()
        result = tr.fit()
        finished = True
        return result
    finally:
        cleanup(barrier=finished)
