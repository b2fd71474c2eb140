"""The run directory: its format, read and written in one place.

A run directory (``inflor train --out OUT``) holds::

    OUT/config.yaml          the resolved config                      (config_file)
    OUT/metrics.csv          one row per epoch                        (metrics)
    OUT/summary.json         status and results                       (summary)
    OUT/init.json            a warm start's evaluation before training (files)
    OUT/checkpoints/last.pt, best.pt                                   (checkpoint)
    OUT/snapshots/epoch_XXXX.json                                      (snapshots)
    OUT/tb/                  TensorBoard events
    OUT/<stage>/             one run directory per stage of a recipe with stages

``layout`` names every path; each file kind has one module that writes and reads it; files are
written atomically (``inflor.atomic``); ``rng`` saves and restores the random generators.
Everything here depends only on the core (``inflor.errors``, ``inflor.atomic``, ``inflor.safeload``),
``inflor.models`` (to rebuild a checkpoint's model) and ``inflor.data`` (to rebuild a run's test loader).
"""
from . import layout  # noqa: F401
from .layout import RunDir  # noqa: F401
