"""Building a run from its config: device, seeds, the model (with its warm start and activation
checkpointing), optimizer and schedule (``build_run``, the one build sequence of ``Trainer.setup``
and ``inflor train --smoke``), and the data loaders."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from inflor.checkpointing import checkpoint_modules
from inflor.data import dataset_options, list_datasets
from inflor.models import create_model, list_models, model_options
from inflor.models.blocks import BasicBlock, ConvUnit, LinearUnit
from inflor.neuron import set_record_stats

from . import warmstart
from .config import ConfigError, effective_model_options
from .distributed import DistInfo
from .objective import needs_stats
from .optim import EpochSchedule, build_optimizer, build_schedule
from .precision import autocast  # noqa: F401  (re-exported)

__all__ = ["resolve_device", "epoch_seed", "seed_everything", "set_deterministic", "autocast", "model_kwargs",
           "make_model", "apply_activation_checkpointing", "check_data_config", "check_model_name", "BuiltRun",
           "build_run", "ShardSampler", "make_loaders"]


# --------------------------------------------------------------------------- device, seeds
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


# --------------------------------------------------------------------------- model
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
    try:
        return model_options(name)
    except ValueError:
        return {}


def make_model(cfg: dict, info) -> nn.Module:
    """``create_model`` with errors about options turned into ConfigError."""
    kwargs = model_kwargs(cfg, info)
    try:
        return create_model(cfg["model"]["name"], **kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model {cfg['model']['name']!r}: {e}") from None


def apply_activation_checkpointing(model: nn.Module, spec) -> list[str]:
    """Wrap the chosen submodules in ``inflor.checkpointing.Checkpoint`` (state_dict keys unchanged)."""
    if not spec:
        return []
    if spec == "blocks":
        return checkpoint_modules(model, types=(BasicBlock, ConvUnit, LinearUnit))
    try:
        return checkpoint_modules(model, names=list(spec))
    except ValueError as e:
        raise ConfigError(f"train.activation_checkpointing: {e}") from None


def check_data_config(cfg: dict) -> None:
    """Dataset name and options, checked without reading files."""
    name = cfg["data"]["name"]
    if name not in list_datasets():
        raise ConfigError(f"invalid value {name!r} for 'data.name'; valid choices: {', '.join(list_datasets())}")
    valid = dataset_options(name)
    unknown = sorted(set(cfg["data"]["options"]) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join('data.options.' + k for k in unknown)}; valid "
                          f"options of dataset {name!r}: {', '.join(sorted(valid)) or 'none'}")


def check_model_name(cfg: dict) -> None:
    if cfg["model"]["name"] not in list_models():
        raise ConfigError(f"invalid value {cfg['model']['name']!r} for 'model.name'; valid choices: "
                          f"{', '.join(list_models())}")


# --------------------------------------------------------------------------- the build sequence
@dataclass
class BuiltRun:
    """What ``build_run`` makes: the model on its device, its optimizer and schedule."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: EpochSchedule
    model_name: str
    model_options: dict
    init_info: dict | None      # what init.json records of a warm start (train.init_from), else None


def build_run(cfg: dict, info, device: torch.device, warm_start: bool = True,
              init_state: dict | None = None) -> BuiltRun:
    """The model of ``cfg`` for data described by ``info``: initialised from ``train.seed``, warm
    started (``init_state``, a state dict, when given, else ``train.init_from`` when
    ``warm_start``), activation checkpointing applied, on ``device``; membrane statistics recorded
    when a loss term reads them; then its optimizer and schedule. Configuration problems are
    raised here, before any data is read."""
    seed_everything(cfg["train"]["seed"])
    model = make_model(cfg, info)
    init_info = None
    if init_state is not None:
        warmstart.load_weights(model, init_state, "the previous stage's weights")
    elif warm_start and cfg["train"]["init_from"]:
        init_info = warmstart.load_init(model, cfg["train"]["init_from"])
    name, options = model.model_name, model.model_options
    apply_activation_checkpointing(model, cfg["train"]["activation_checkpointing"])
    model = model.to(device)
    optimizer = build_optimizer(model, cfg)
    schedule = build_schedule(optimizer, cfg)
    set_record_stats(model, needs_stats(cfg))
    return BuiltRun(model, optimizer, schedule, name, options, init_info)


# --------------------------------------------------------------------------- data loaders
class ShardSampler(Sampler):
    """Indices ``rank, rank + W, ...`` of a dataset, in order and without padding (evaluation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def make_loaders(train_ds, test_ds, cfg: dict, dist: DistInfo, batch_size: int, test_batch_size: int,
                 pin_memory: bool):
    """``(train sampler, its generator, train loader, test loader)``: training shuffled by a
    ``DistributedSampler`` (re-seeded each epoch), testing in order, each process its shard."""
    d, seed = cfg["data"], cfg["train"]["seed"]
    sampler = DistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed,
                                 drop_last=False)
    gen = torch.Generator()
    train_loader = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=d["workers"],
                              pin_memory=pin_memory, drop_last=d["drop_last"], generator=gen,
                              persistent_workers=False)
    test_loader = DataLoader(test_ds, batch_size=test_batch_size,
                             sampler=ShardSampler(len(test_ds), dist.rank, dist.world_size),
                             num_workers=d["workers"], pin_memory=pin_memory)
    if len(train_loader) == 0:
        raise ConfigError(f"the training set has {len(train_ds)} samples, fewer than one batch "
                          f"(data.batch_size={d['batch_size']} with drop_last)")
    return sampler, gen, train_loader, test_loader
