"""Checkpoints of ``inflor train``: moved to ``inflor.runs.checkpoint`` (the run directory's
formats live in ``inflor.runs``); this import path keeps working."""
from ..runs.checkpoint import (EXPECTED, FORMAT, REQUIRED, CheckpointError, build_model_from_checkpoint,  # noqa: F401
                               checkpoint_bytes, get_rng_state, load_checkpoint, load_model_state,
                               save_checkpoint, set_rng_state, versions)

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "checkpoint_bytes", "load_checkpoint",
           "build_model_from_checkpoint", "load_model_state", "get_rng_state", "set_rng_state", "versions"]
