"""Seeing inside a spiking network: membrane statistics, quantization error, snapshots, reports.

* ``quantization_error(u)`` — InfLoR Eq. 9 on a tensor.
* ``iter_membrane`` / ``membrane_potentials`` — replay a neuron's equations from its input
  current to recover H and φ(H) (``inflor.analysis.membrane``).
* ``MembraneProbe`` / ``run_probe`` — forward hooks on every spiking layer, streamed statistics
  with bounded memory (``inflor.analysis.probe``).
* ``analyze`` — the whole ``inflor analyze`` pipeline on a model and a loader, writing
  ``analysis.json``, plots and a report (``inflor.analysis.report``).
* ``snapshot`` — per-epoch statistics for the trainer (``inflor.analysis.snapshot``).

See docs/analysis.md for what each number means.
"""
from __future__ import annotations

import torch


def quantization_error(u: torch.Tensor, v_threshold: float = 0.5) -> torch.Tensor:
    """Quantization error (InfLoR Eq. 9): mean of (u − o)², o = Θ(u − V_th) the spike of the
    potential u presented to the step function (pass φ(H) to measure it after MPR)."""
    o = (u >= v_threshold).to(u.dtype)
    return ((u - o) ** 2).mean()


from .membrane import Histogram, LayerAccumulator, iter_membrane, membrane_potentials, window_mask  # noqa: E402
from .probe import MembraneProbe, run_probe, select_layers  # noqa: E402

__all__ = ["quantization_error", "Histogram", "LayerAccumulator", "iter_membrane",
           "membrane_potentials", "window_mask", "MembraneProbe", "run_probe", "select_layers"]
