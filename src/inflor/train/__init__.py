"""Training: run configuration, the trainer behind ``inflor train``, checkpoints and DDP helpers.

    from inflor.train import load_config, run_training
    cfg = load_config("default", ["train.epochs=5"])       # recipe name or path + overrides
    summary = run_training(cfg, "runs/digits")              # writes config, metrics, checkpoints

See ``docs/training.md``.
"""
from .checkpoint import (CheckpointError, build_model_from_checkpoint, load_checkpoint,  # noqa: F401
                         save_checkpoint)
from .config import ConfigError, list_recipes, load_config, validate_config  # noqa: F401
from .trainer import NonFiniteLossError, RunError, StopRun, Trainer, run_training, smoke_test  # noqa: F401

__all__ = ["CheckpointError", "build_model_from_checkpoint", "load_checkpoint", "save_checkpoint", "ConfigError",
           "list_recipes", "load_config", "validate_config", "NonFiniteLossError", "RunError", "StopRun", "Trainer",
           "run_training", "smoke_test"]
