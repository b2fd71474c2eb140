"""The training loop behind ``inflor train``.

One ``Trainer`` per run: it builds the model (``inflor.models.create_model``), the data
(``inflor.data.build_datasets``), the optimizer, the per-epoch learning-rate schedule and the
loss objective from a validated config (``inflor.train.config``), then trains and tests once per
epoch, writing ``config.yaml``, ``metrics.csv``, ``summary.json``, TensorBoard events and
checkpoints into the run directory.

Reproducibility: weights are initialised from ``train.seed``; at the start of epoch e every
random generator (torch, numpy, python, the sampler, the DataLoader workers) is re-seeded from
(seed, e, rank), so the batches and augmentations of an epoch depend only on (seed, epoch) and a
resumed run sees exactly what an uninterrupted one would. Checkpoints also store the generator
states.

Loss objective (DESIGN.md §6)::

    total = task(logits, y) + loss.mpd.weight · mpd_loss(all spiking layers)
                            + loss.im.weight  · im_loss(IM-restricted layers)

Membrane statistics are recorded only when a distribution loss is on. The ``spike_rate`` metric
is the mean firing rate over all neurons and time steps on the test set (a forward hook, no
statistics needed).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from inflor.atomic import atomic_write
from inflor.errors import (CheckpointError, InflorError, NonFiniteLossError, RunError,  # noqa: F401  (re-exported)
                           message)
from inflor.losses import TASK_LOSSES, im_loss, im_loss_official, mpd_loss
from inflor.neuron import BaseNode, collect_stats, set_record_stats
from inflor.surrogate import ESG

from . import checkpoint as ckpt_mod
from . import warmstart
from .config import ConfigError, dump_config, effective_model_options
from .distributed import (DistInfo, all_reduce_sum, barrier, broadcast_object, cleanup, init_distributed,
                          per_process_batch, peer_failure)
from .interrupts import Interrupts
from .online import online_backward
from .specs import static_dataset_info

__all__ = ["Trainer", "RunError", "NonFiniteLossError", "StopRun", "METRIC_FIELDS", "build_optimizer",
           "EpochSchedule", "resolve_device", "seed_everything", "epoch_seed", "compute_loss", "smoke_test"]

METRIC_FIELDS = ["epoch", "train_loss", "task_loss", "mpd_loss", "im_loss", "train_acc", "test_loss",
                 "test_acc", "lr", "spike_rate", "esg_k", "epoch_time"]


class StopRun(Exception):
    """Raised by a callback to end the run after the current epoch's checkpoint (as if killed)."""


# --------------------------------------------------------------------------- helpers
def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={spec!r} but CUDA is not available here; use train.device=cpu or auto")
    return torch.device(spec)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of epoch ``epoch`` on ``rank``: a fixed function of (seed, epoch, rank)."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729 + 17) % (2 ** 31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool, device: torch.device) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    o = cfg["optim"]
    wd = o["weight_decay"]
    if o["wd_on_bn_bias"] or wd == 0:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": wd}]
    else:  # decay only conv / linear weights (dim > 1); norm γ, β and biases are not decayed
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if o["name"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"])
    if o["name"] == "adam":
        return torch.optim.Adam(groups, lr=o["lr"], betas=tuple(o["betas"]))
    return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]))


class EpochSchedule:
    """Learning rate per epoch: linear warm-up over ``warmup`` epochs, then a cosine from the base
    lr to ``min_lr`` over the rest of the ``period`` (PyTorch's CosineAnnealingLR stepped once per
    epoch, as the papers' code does), or constant (``none``). Stateless apart from the epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, period: int, warmup: int = 0,
                 min_lr: float = 0.0):
        self.optimizer, self.name, self.period, self.warmup, self.min_lr = optimizer, name, period, warmup, min_lr
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.epoch = 0

    def lr_at(self, epoch: int, base: float) -> float:
        if self.name == "none":
            return base
        if epoch < self.warmup:
            return base * (epoch + 1) / (self.warmup + 1)
        span = max(1, self.period - self.warmup)
        t = min(epoch - self.warmup, span)
        return self.min_lr + (base - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / span))

    def set_epoch(self, epoch: int) -> float:
        self.epoch = epoch
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(epoch, base)
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"name": self.name, "period": self.period, "warmup": self.warmup, "min_lr": self.min_lr,
                "epoch": self.epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.base_lrs = list(state["base_lrs"])


class ShardSampler(Sampler):
    """Indices ``rank, rank + W, ...`` of a dataset, in order and without padding (evaluation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def bare_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def esg_modules(model: nn.Module) -> list[ESG]:
    return [m for m in bare_model(model).modules() if isinstance(m, ESG)]


def needs_stats(cfg: dict) -> bool:
    return cfg["loss"]["mpd"]["weight"] > 0 or cfg["loss"]["im"]["weight"] > 0


def compute_loss(model: nn.Module, logits: torch.Tensor, target: torch.Tensor, cfg: dict) -> dict:
    """The loss terms of one batch: ``{"total", "task", "mpd", "im"}`` (0-dim tensors)."""
    lc = cfg["loss"]
    task = TASK_LOSSES[lc["task"]](logits.float(), target, label_smoothing=lc["label_smoothing"])
    zero = task.new_zeros(())
    parts = {"task": task, "mpd": zero, "im": zero}
    total = task
    m = bare_model(model)
    vth = float(getattr(m, "v_threshold", 0.5))
    if lc["mpd"]["weight"] > 0:
        mp = lc["mpd"]
        parts["mpd"] = mpd_loss(collect_stats(m), v_threshold=vth, k_d=mp["k_d"], k_s=mp["k_s"],
                                k_m=mp["k_m"], terms=mp["terms"])
        total = total + mp["weight"] * parts["mpd"]
    if lc["im"]["weight"] > 0:
        stats = collect_stats(m, im_restricted_only=True)
        if lc["im"]["form"] == "paper":
            parts["im"] = im_loss(stats, v_threshold=vth)
        else:
            parts["im"] = im_loss_official(stats, v_threshold=vth, drop_first_last=lc["im"]["drop_first_last"])
        total = total + lc["im"]["weight"] * parts["im"]
    parts["total"] = total
    return parts


def _first_nonfinite(parts: dict) -> str | None:
    for name in ("task", "mpd", "im", "total"):
        if not torch.isfinite(parts[name]).all():
            return name
    return None


class SpikeCounter:
    """Forward hooks on every spiking neuron summing spikes and neuron-steps (detached)."""

    def __init__(self, model: nn.Module):
        self._spikes = None      # a device tensor: no host sync per layer
        self.count = 0
        self.handles = [m.register_forward_hook(self._hook) for m in bare_model(model).modules()
                        if isinstance(m, BaseNode)]

    def _hook(self, module, inputs, output):
        s = output.detach().sum(dtype=torch.float64)
        self._spikes = s if self._spikes is None else self._spikes + s
        self.count += output.numel()

    @property
    def spikes(self) -> float:
        return 0.0 if self._spikes is None else float(self._spikes)

    def remove(self):
        for h in self.handles:
            h.remove()


def _autocast(device: torch.device, cfg: dict):
    t = cfg["train"]
    if not t["amp"]:
        return torch.autocast(device.type, enabled=False)
    dtype = t["amp_dtype"]
    if dtype == "auto":
        dtype = "float16" if device.type == "cuda" else "bfloat16"
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def _fmt(v, spec=".4f"):
    return "-" if v is None or v == "" else format(v, spec)


def _progress_mode(cfg: dict) -> str:
    mode = cfg["train"]["progress"]
    if mode != "auto":
        return mode
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return "bar" if sys.stderr.isatty() and not ci else "plain"


# --------------------------------------------------------------------------- model building
def model_kwargs(cfg: dict, info) -> dict:
    """create_model keyword arguments from the config and the dataset description."""
    opts = effective_model_options(cfg)
    if "num_classes" in opts and opts["num_classes"] != info.num_classes:
        raise ConfigError(f"model.options.num_classes={opts['num_classes']} but dataset "
                          f"{info.name!r} has {info.num_classes} classes")
    opts["num_classes"] = info.num_classes
    c = info.input_shape[0]
    if "in_channels" in opts and opts["in_channels"] != c:
        raise ConfigError(f"model.options.in_channels={opts['in_channels']} but dataset "
                          f"{info.name!r} gives {c}-channel inputs")
    opts["in_channels"] = c
    if info.timesteps is not None and "timesteps" in opts and opts["timesteps"] != info.timesteps:
        raise ConfigError(f"model.options.timesteps={opts['timesteps']} but the event data of "
                          f"{info.name!r} has {info.timesteps} frames (set data.options.timesteps)")
    if info.timesteps is not None:
        opts["timesteps"] = info.timesteps
    h, w = info.input_shape[1:]
    if "input_size" not in opts and h == w and "input_size" in _model_option_names(cfg["model"]["name"]):
        opts["input_size"] = h   # models with a fixed-size flatten layer follow the data
    return opts


def _model_option_names(name: str) -> dict:
    from inflor.models import model_options

    try:
        return model_options(name)
    except ValueError:
        return {}


def make_model(cfg: dict, info) -> nn.Module:
    """``create_model`` with errors about options turned into ConfigError."""
    from inflor.models import create_model

    kwargs = model_kwargs(cfg, info)
    try:
        return create_model(cfg["model"]["name"], **kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model {cfg['model']['name']!r}: {e}") from None


def apply_activation_checkpointing(model: nn.Module, spec) -> list[str]:
    """Wrap the chosen submodules in ``inflor.checkpointing.Checkpoint`` (state_dict keys unchanged)."""
    if not spec:
        return []
    from inflor.checkpointing import checkpoint_modules

    if spec == "blocks":
        from inflor.models.blocks import BasicBlock, ConvUnit, LinearUnit
        return checkpoint_modules(model, types=(BasicBlock, ConvUnit, LinearUnit))
    try:
        return checkpoint_modules(model, names=list(spec))
    except ValueError as e:
        raise ConfigError(f"train.activation_checkpointing: {e}") from None


def check_data_config(cfg: dict) -> None:
    """Dataset name and options, checked without reading files."""
    from inflor.data import dataset_options, list_datasets

    name = cfg["data"]["name"]
    if name not in list_datasets():
        raise ConfigError(f"invalid value {name!r} for 'data.name'; valid choices: {', '.join(list_datasets())}")
    valid = dataset_options(name)
    unknown = sorted(set(cfg["data"]["options"]) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join('data.options.' + k for k in unknown)}; valid "
                          f"options of dataset {name!r}: {', '.join(sorted(valid)) or 'none'}")


def check_model_name(cfg: dict) -> None:
    from inflor.models import list_models

    if cfg["model"]["name"] not in list_models():
        raise ConfigError(f"invalid value {cfg['model']['name']!r} for 'model.name'; valid choices: "
                          f"{', '.join(list_models())}")


# --------------------------------------------------------------------------- smoke test
def smoke_test(cfg: dict, batch_size: int = 2, image_size: int | None = None, device: str | None = None,
               out=print, init_state: dict | None = None) -> dict:
    """Build everything of a run (model, optimizer, schedule, loss) and do one forward + backward +
    step on a random batch of the dataset's shape. Needs no dataset files. Returns timings.

    The weights of ``train.init_from`` are loaded when that file exists, or ``init_state`` (a
    state dict) when given; a recipe with ``stages`` smoke-tests each stage from the weights the
    one before it left (``inflor.train.stages.smoke_stages``)."""
    if cfg.get("stages"):
        from .stages import smoke_stages
        return smoke_stages(cfg, batch_size=batch_size, image_size=image_size, device=device, out=out)
    t0 = time.perf_counter()
    check_model_name(cfg)
    check_data_config(cfg)
    dev = resolve_device(device or cfg["train"]["device"])
    data_opts = dict(cfg["data"]["options"])
    info = static_dataset_info(cfg["data"]["name"], data_opts, root=cfg["data"]["root"])
    if image_size is not None:   # models with a fixed-size flatten layer are built for this size
        c = info.input_shape[0]
        info = type(info)(name=info.name, num_classes=info.num_classes, input_shape=(c, image_size, image_size),
                          timesteps=info.timesteps)
    seed_everything(cfg["train"]["seed"])
    model = make_model(cfg, info)
    try:
        if init_state is not None:
            warmstart.load_weights(model, init_state, "the previous stage's weights")
        elif cfg["train"]["init_from"]:
            warmstart.load_init(model, cfg["train"]["init_from"])
    except ckpt_mod.CheckpointError as e:
        raise RunError(str(e)) from None
    apply_activation_checkpointing(model, cfg["train"]["activation_checkpointing"])
    model.to(dev).train()
    opt = build_optimizer(model, cfg)
    sched = EpochSchedule(opt, cfg["sched"]["name"], cfg["sched"]["epochs"] or cfg["train"]["epochs"],
                          cfg["sched"]["warmup"], cfg["sched"]["min_lr"])
    lr = sched.set_epoch(0)
    for m in esg_modules(model):
        m.set_epoch(0, cfg["train"]["epochs"])
    set_record_stats(model, needs_stats(cfg))
    t_build = time.perf_counter() - t0
    shape = (batch_size, *info.input_shape) if info.timesteps is None else \
        (batch_size, info.timesteps, *info.input_shape)
    x = torch.randn(shape, device=dev) if info.timesteps is None else \
        (torch.rand(shape, device=dev) < 0.2).float()
    y = torch.randint(0, info.num_classes, (batch_size,), device=dev)
    t1 = time.perf_counter()
    try:
        with _autocast(dev, cfg):
            logits = model(x)
        parts = compute_loss(model, logits, y, cfg)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
    except (ValueError, RuntimeError, TypeError) as e:
        raise RunError(f"smoke test of {cfg.get('name') or cfg['model']['name']!r} failed on a random batch "
                       f"{tuple(shape)}: {type(e).__name__}: {e}") from e
    bad = _first_nonfinite(parts)
    if bad:
        raise NonFiniteLossError(f"smoke test: the {bad} loss is not finite ({float(parts[bad].detach())})")
    n_params = sum(p.numel() for p in model.parameters())
    res = {"name": cfg.get("name"), "model": cfg["model"]["name"], "params": n_params,
           "input_shape": list(shape), "logits_shape": list(logits.shape), "lr": lr,
           "loss": {k: float(v.detach()) for k, v in parts.items()}, "build_s": t_build, "forward_s": t2 - t1,
           "backward_s": t3 - t2, "step_s": t4 - t3, "device": str(dev), "model_state": model.state_dict()}
    if out is not None:
        out(f"smoke OK: {res['name'] or '-'}: {res['model']} ({n_params / 1e6:.2f} M params) on {dev}, "
            f"input {tuple(shape)} -> logits {tuple(logits.shape)}, loss {res['loss']['total']:.4f} "
            f"(task {res['loss']['task']:.4f}, mpd {res['loss']['mpd']:.4f}, im {res['loss']['im']:.4f}); "
            f"build {t_build:.2f}s, forward {t2 - t1:.2f}s, backward {t3 - t2:.2f}s, step {t4 - t3:.3f}s")
    return res


# --------------------------------------------------------------------------- trainer
@dataclass
class EpochResult:
    loss: float
    task: float
    mpd: float
    im: float
    acc: float
    samples: int


class Trainer:
    """Train one run. ``cfg`` must come from ``config.validate_config`` (or ``load_config``).

    Args:
        out_dir: the run directory.
        resume: continue from ``out_dir/checkpoints/last.pt``.
        callbacks: callables ``fn(trainer, epoch, row)`` called after each epoch's checkpoint;
            raising ``StopRun`` ends the run there (tests use it to simulate a kill).
        log: where progress lines go (default ``print``).
    """

    def __init__(self, cfg: dict, out_dir: str | os.PathLike, resume: bool = False,
                 callbacks: Iterable[Callable] = (), log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.resume = resume
        self.callbacks = list(callbacks)
        self._log = log or (lambda s: print(s, flush=True))
        self.dist = DistInfo()
        self.metrics: list[dict] = []
        self.best_acc: float | None = None
        self.best_epoch: int | None = None
        self.start_epoch = 0
        self.elapsed_before = 0.0
        self.status = "created"
        self.tb = None
        self.tb_steps = None

    # ------------------------------------------------------------------ logging
    def log(self, msg: str) -> None:
        if self.dist.is_main:
            self._log(msg)

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything; configuration problems are raised before any data is read."""
        cfg = self.cfg
        t = cfg["train"]
        self.device = resolve_device(t["device"])
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        set_deterministic(t["deterministic"], self.device)
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
            last = self.ckpt_dir / "last.pt"
            if not last.is_file():
                raise RunError(f"nothing to resume in {self.out}: {last} does not exist "
                               "(the run did not finish an epoch); start it again without --resume")
        elif broadcast_object(self.dist.is_main and (self.ckpt_dir / "last.pt").exists(), self.dist):
            raise RunError(f"{self.out} already holds a run (checkpoints/last.pt); pass --resume to "
                           "continue it or choose another --out")

        # model first (validates its options), from the static description of the data
        seed_everything(t["seed"])
        info = static_dataset_info(cfg["data"]["name"], cfg["data"]["options"], root=cfg["data"]["root"])
        model = make_model(cfg, info)
        self.init_info = None
        warm = t["init_from"] and not self.resume     # a warm start: weights only (inflor.train.warmstart)
        if warm:   # checked before any data is read
            self.init_info = warmstart.load_init(model, t["init_from"])

        # data (may raise FileNotFoundError naming the missing files)
        from inflor.data import build_datasets
        self.train_ds, self.test_ds, self.info = build_datasets(cfg["data"]["name"], root=cfg["data"]["root"],
                                                                **cfg["data"]["options"])
        if (self.info.num_classes, tuple(self.info.input_shape), self.info.timesteps) != \
                (info.num_classes, tuple(info.input_shape), info.timesteps):
            seed_everything(t["seed"])
            model = make_model(cfg, self.info)
            if warm:
                self.init_info = warmstart.load_init(model, t["init_from"])
        self.model_name = model.model_name
        self.model_options = model.model_options
        apply_activation_checkpointing(model, t["activation_checkpointing"])
        self.model = model.to(self.device)
        self.n_params = sum(p.numel() for p in model.parameters())

        self.optimizer = build_optimizer(self.model, cfg)
        self.schedule = EpochSchedule(self.optimizer, cfg["sched"]["name"], cfg["sched"]["epochs"] or t["epochs"],
                                      cfg["sched"]["warmup"], cfg["sched"]["min_lr"])
        use_scaler = t["amp"] and self.device.type == "cuda" and t["amp_dtype"] in ("auto", "float16")
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        set_record_stats(self.model, needs_stats(cfg))

        if self.resume:
            self._load_resume()

        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model

        # loaders
        d = cfg["data"]
        pin = self.device.type == "cuda"
        self.train_sampler = DistributedSampler(self.train_ds, num_replicas=self.dist.world_size,
                                                rank=self.dist.rank, shuffle=True, seed=t["seed"],
                                                drop_last=False)
        self.loader_gen = torch.Generator()
        self.train_loader = DataLoader(self.train_ds, batch_size=self.batch_size, sampler=self.train_sampler,
                                       num_workers=d["workers"], pin_memory=pin, drop_last=d["drop_last"],
                                       generator=self.loader_gen, persistent_workers=False)
        self.test_loader = DataLoader(self.test_ds, batch_size=self.test_batch_size,
                                      sampler=ShardSampler(len(self.test_ds), self.dist.rank, self.dist.world_size),
                                      num_workers=d["workers"], pin_memory=pin)
        if len(self.train_loader) == 0:
            raise ConfigError(f"the training set has {len(self.train_ds)} samples, fewer than one batch "
                              f"(data.batch_size={d['batch_size']} with drop_last)")

        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_config(cfg))
            if t["tensorboard"]:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.out / "tb"), purge_step=self.start_epoch + 1)
                gstep = self.start_epoch * self._steps_per_epoch()
                self.tb_steps = SummaryWriter(str(self.out / "tb" / "steps"), purge_step=gstep + 1)
        barrier(self.dist)
        if self.init_info is not None:
            self.init_info = warmstart.evaluate_init(self)

    def _steps_per_epoch(self) -> int:
        n = len(self.train_loader)
        m = self.cfg["train"]["max_steps_per_epoch"]
        return min(n, m) if m else n

    def _load_resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        ck = ckpt_mod.load_checkpoint(path, map_location="cpu")
        if ck["model_name"] != self.model_name or ck["model_options"] != self.model_options:
            saved, built = ck["model_options"], self.model_options
            keys = [k for k in dict.fromkeys([*saved, *built]) if saved.get(k) != built.get(k)]

            def options(o: dict) -> str:   # only the options that differ
                return ", ".join(f"{k}={o.get(k)!r}" for k in keys) or "the same options"
            raise ckpt_mod.CheckpointError(
                f"{path} was saved from model {ck['model_name']!r} with {options(saved)}, but this run builds "
                f"{self.model_name!r} with {options(built)}")
        ckpt_mod.load_model_state(self.model, ck, str(path))
        self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        if self.scaler is not None and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        self.start_epoch = int(ck["epoch"])
        self.best_acc, self.best_epoch = ck.get("best_acc"), ck.get("best_epoch")
        self.metrics = list(ck.get("metrics", []))
        self.elapsed_before = float(ck.get("elapsed", 0.0))
        if "rng" in ck:
            ckpt_mod.set_rng_state(ck["rng"])
        self.log(f"resuming {self.out} after epoch {self.start_epoch} "
                 f"(best test acc so far {_fmt(self.best_acc)})")

    # ------------------------------------------------------------------ one epoch
    def _seed_epoch(self, epoch: int) -> None:
        s = epoch_seed(self.cfg["train"]["seed"], epoch, self.dist.rank)
        seed_everything(s)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(s)
        self.train_sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(s)

    def _backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def train_epoch(self, epoch: int) -> EpochResult:
        cfg, t = self.cfg, self.cfg["train"]
        self.ddp.train()
        dev = self.device
        sums = torch.zeros(6, dtype=torch.float64)  # loss, task, mpd, im, correct, n
        steps = self._steps_per_epoch()
        bar = None
        if self.dist.is_main and self.progress == "bar":
            from tqdm import tqdm
            bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{t['epochs']}", leave=False, dynamic_ncols=True,
                       file=sys.stderr)
        gstep = epoch * steps
        for step, (x, y) in enumerate(self.train_loader):
            if step >= steps:
                break
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            online = t["bptt"] == "online"    # inflor.train.online: backward inside, step by step
            if online:
                self.optimizer.zero_grad(set_to_none=True)
                logits, parts = online_backward(self.ddp, x, lambda lg: compute_loss(self.ddp, lg, y, cfg),
                                                lambda: _autocast(dev, cfg), self._backward)
            else:
                with _autocast(dev, cfg):
                    logits = self.ddp(x)
                parts = compute_loss(self.ddp, logits, y, cfg)
            bad = _first_nonfinite(parts)
            flag = torch.tensor([0.0 if bad is None else 1.0])
            if self.dist.enabled:
                all_reduce_sum(flag, self.dist)
            if flag.item() > 0:
                vals = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in parts.items())
                who = f"the {bad} loss" if bad else "a loss on another rank"
                raise NonFiniteLossError(
                    f"{who} is not finite at epoch {epoch + 1}, step {step + 1} ({vals}); stopping. "
                    f"The last good checkpoint is kept in {self.ckpt_dir / 'last.pt'}"
                    + (" (none yet: no epoch finished)" if not (self.ckpt_dir / "last.pt").exists() else "")
                    + ". Try a lower optim.lr, or train.amp=false.")
            if not online:
                self.optimizer.zero_grad(set_to_none=True)
                self._backward(parts["total"])
            if self.scaler is not None:
                if t["grad_clip"]:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), t["grad_clip"])
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                if t["grad_clip"]:
                    nn.utils.clip_grad_norm_(self.model.parameters(), t["grad_clip"])
                self.optimizer.step()
            with torch.no_grad():
                b = y.shape[0]
                correct = (logits.detach().float().mean(0).argmax(1) == y).sum().item()
                vals = [float(parts[k].detach()) for k in ("total", "task", "mpd", "im")]
                sums += torch.tensor([v * b for v in vals] + [correct, b], dtype=torch.float64)
            gstep += 1
            if self.tb_steps is not None and gstep % t["log_every"] == 0:
                self.tb_steps.add_scalar("step/train_loss", vals[0], gstep)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{vals[0]:.3f}", acc=f"{sums[4] / max(sums[5], 1):.3f}")
        if bar is not None:
            bar.close()
        all_reduce_sum(sums, self.dist)
        n = max(float(sums[5]), 1.0)
        return EpochResult(float(sums[0] / n), float(sums[1] / n), float(sums[2] / n), float(sums[3] / n),
                           float(sums[4] / n), int(sums[5]))

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
        self.progress = _progress_mode(cfg) if self.dist.is_main else "none"
        epochs = t["epochs"]
        t_start = time.perf_counter()
        if self.start_epoch == 0:
            self.log(f"run {self.out}: {self.model_name} ({self.n_params / 1e6:.3f} M params) on "
                     f"{self.info.name} ({len(self.train_ds)} train / {len(self.test_ds)} test), "
                     f"{epochs} epochs, device {self.device}"
                     + (f", {self.dist.world_size} processes" if self.dist.enabled else ""))
        self.status = "running"
        stop_after = t["stop_after_epochs"]
        esgs = esg_modules(self.model)
        if t["snapshots"]:   # per-layer statistics at chosen epochs (inflor.analysis.snapshot)
            from inflor.analysis.snapshot import SnapshotCallback
            snap = SnapshotCallback(t["snapshots"], t["snapshot_batches"])
            snap.before_training(self)
            self.callbacks.insert(0, snap)
        epoch = self.start_epoch
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
                k = None
                for m in esgs:
                    k = m.set_epoch(epoch, epochs)
                res = self.train_epoch(epoch)
                last = epoch == epochs - 1
                test = self.evaluate() if ((epoch + 1) % t["eval_every"] == 0 or last) else None
                row = {"epoch": epoch + 1, "train_loss": res.loss, "task_loss": res.task, "mpd_loss": res.mpd,
                       "im_loss": res.im, "train_acc": res.acc,
                       "test_loss": test["loss"] if test else None, "test_acc": test["acc"] if test else None,
                       "lr": lr, "spike_rate": test["spike_rate"] if test else None, "esg_k": k,
                       "epoch_time": time.perf_counter() - te}
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
            self.log(f"done: best test acc {_fmt(self.best_acc)} (epoch {self.best_epoch}), final "
                     f"{_fmt(self.metrics[-1]['test_acc'] if self.metrics else None)}; "
                     f"{summary['wall_time']:.1f}s; outputs in {self.out}")
        else:
            self.log(f"stopped after epoch {len(self.metrics)} of {epochs}; continue with --resume "
                     f"--out {self.out}")
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
        self._end("failed", t_start, message(error) if isinstance(error, InflorError) else
                  f"{type(e).__name__}: {e}")
        return failure

    def _end(self, status: str, t_start: float, error: str) -> None:
        """Record a run that ends early: ``summary.json`` with ``status`` and ``error`` (as far as the
        disk allows: a failure to write it is logged, not raised over the error that ended the
        run), then close the TensorBoard writers."""
        self.status = status
        try:
            self._write_summary(t_start, error=error)
        except OSError as e:
            self.log(f"could not write {self.out / 'summary.json'}: {e}")
        self._close()

    def _save_unsaved(self) -> None:
        """Write the last finished epoch's checkpoint if ``train.save_every`` skipped it."""
        if self._unsaved is not None and self.dist.is_main:
            ckpt_mod.save_checkpoint(self._unsaved, self.ckpt_dir / "last.pt")
            self.saved_epoch = len(self.metrics)
        self._unsaved = None

    def _epoch_outputs(self, row: dict, epoch: int, improved: bool, last: bool, t_start: float) -> None:
        t = self.cfg["train"]
        if self.dist.is_main:
            write_metrics_csv(self.out / "metrics.csv", self.metrics)
            if self.tb is not None:
                for key in METRIC_FIELDS[1:]:
                    if row[key] is not None:
                        self.tb.add_scalar(f"epoch/{key}", row[key], epoch + 1)
                self.tb.flush()
                self.tb_steps.flush()
            if self.progress != "none":
                self.log(f"epoch {epoch + 1}/{t['epochs']}  loss {row['train_loss']:.4f} "
                         f"(task {row['task_loss']:.4f}, mpd {row['mpd_loss']:.4f}, im {row['im_loss']:.4f})  "
                         f"train_acc {row['train_acc']:.4f}  test_acc {_fmt(row['test_acc'])} "
                         f"(best {_fmt(self.best_acc)})  lr {row['lr']:.4g}  spike_rate {_fmt(row['spike_rate'])}"
                         + (f"  K {row['esg_k']:.3f}" if row["esg_k"] is not None else "")
                         + f"  {row['epoch_time']:.1f}s")
            elapsed = self.elapsed_before + time.perf_counter() - t_start
            state = self.checkpoint_state(epoch + 1, elapsed)
            if (epoch + 1) % t["save_every"] == 0 or last or improved or \
                    (t["stop_after_epochs"] is not None and epoch + 1 >= t["stop_after_epochs"]):
                # best.pt first: a failure between the two leaves best.pt ahead of last.pt, which a
                # resume re-creates; the other order could leave last.pt naming a best epoch that
                # best.pt never received
                if improved:
                    ckpt_mod.save_checkpoint(state, self.ckpt_dir / "best.pt")
                ckpt_mod.save_checkpoint(state, self.ckpt_dir / "last.pt")
                self._unsaved, self.saved_epoch = None, epoch + 1
            else:   # kept (serialised) so that an interrupt can still save this epoch
                self._unsaved = ckpt_mod.checkpoint_bytes(state)
        barrier(self.dist)

    def checkpoint_state(self, epochs_done: int, elapsed: float) -> dict:
        return {
            "format": ckpt_mod.FORMAT,
            "model_name": self.model_name,
            "model_options": self.model_options,
            "model_state": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": epochs_done,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "config": self.cfg,
            "rng": ckpt_mod.get_rng_state(),
            "metrics": list(self.metrics),
            "elapsed": elapsed,
            "versions": ckpt_mod.versions(),
        }

    def _write_summary(self, t_start: float, error: str | None = None) -> dict:
        last_test = next((r["test_acc"] for r in reversed(self.metrics) if r["test_acc"] is not None), None)
        summary = {
            "name": self.cfg.get("name"),
            "status": self.status,
            "best_test_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "final_test_acc": last_test,
            "final_train_acc": self.metrics[-1]["train_acc"] if self.metrics else None,
            "epochs_done": len(self.metrics),
            "epochs": self.cfg["train"]["epochs"],
            "wall_time": self.elapsed_before + time.perf_counter() - t_start,
            "model": self.model_name,
            "params": self.n_params,
            "dataset": self.info.name,
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "paper": self.cfg.get("paper"),
            "reported_acc": (self.cfg.get("paper") or {}).get("reported_acc"),
            "versions": ckpt_mod.versions(),
            "config": self.cfg,
        }
        if error:
            summary["error"] = error
        if self.dist.is_main:
            _atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _close(self) -> None:
        for w in (self.tb, self.tb_steps):
            if w is not None:
                w.close()
        self.tb = self.tb_steps = None


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, cfg: dict,
             dist_info: DistInfo | None = None) -> dict:
    """Test loss (the task loss), accuracy of the T-mean logits and mean spike rate."""
    dist_info = dist_info or DistInfo()
    model.eval()
    bare = bare_model(model)
    recording = [m.record_stats for m in bare.modules() if isinstance(m, BaseNode)]
    set_record_stats(bare, False)
    counter = SpikeCounter(bare)
    sums = torch.zeros(3, dtype=torch.float64)
    task = TASK_LOSSES[cfg["loss"]["task"]]
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, cfg):
                logits = bare(x)
            logits = logits.float()
            b = y.shape[0]
            sums += torch.tensor([float(task(logits, y)) * b, (logits.mean(0).argmax(1) == y).sum().item(), b],
                                 dtype=torch.float64)
    finally:
        counter.remove()
        nodes = [m for m in bare.modules() if isinstance(m, BaseNode)]
        for m, r in zip(nodes, recording):
            m.record_stats = r
    spikes = torch.tensor([counter.spikes, float(counter.count)], dtype=torch.float64)
    all_reduce_sum(sums, dist_info)
    all_reduce_sum(spikes, dist_info)
    n = max(float(sums[2]), 1.0)
    return {"loss": float(sums[0] / n), "acc": float(sums[1] / n), "samples": int(sums[2]),
            "spike_rate": float(spikes[0] / spikes[1]) if spikes[1] > 0 else None}


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), fsync=False)


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k]))
                    for k in METRIC_FIELDS})
    _atomic_write_text(path, buf.getvalue())


def run_training(cfg: dict, out_dir, resume: bool = False, callbacks=(), log=None) -> dict:
    """Set up and run a ``Trainer`` (each stage's in turn for a recipe with ``stages``); always
    tears the process group down."""
    if cfg.get("stages"):
        from .stages import run_stages
        return run_stages(cfg, out_dir, resume=resume, callbacks=callbacks, log=log)
    tr = Trainer(cfg, out_dir, resume=resume, callbacks=callbacks, log=log)
    finished = False
    try:
        tr.setup()
        result = tr.fit()
        finished = True
        return result
    finally:
        cleanup(barrier=finished)
