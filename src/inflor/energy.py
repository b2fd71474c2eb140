"""Synaptic operations (SOPs) and an energy estimate, per conv/linear layer.

Counting (per sample):

* ``MACs`` of a conv/linear layer: the multiply-accumulates of one ANN forward pass with the same
  shapes, ``out_elements · (C_in / groups) · k_h · k_w`` for a convolution and
  ``out_features · in_features`` for a linear layer (bias additions ignored). Counted from the
  shapes seen by forward hooks, so it needs one real forward pass.
* ``SOPs`` of a layer fed by spikes: ``MACs · r · T``, r the mean of its input over all T steps
  (the firing rate of the spikes entering it; after average pooling, the pooled rate), since an
  accumulate happens only where a spike arrives. The first layer (in execution order) receives
  the analog image (direct encoding), so it performs real multiply-accumulates: ``MACs · T``.
* Energy: ``E_SNN = E_MAC · MACs_first · T + E_AC · Σ SOPs`` against ``E_ANN = E_MAC · Σ MACs``.
  Neuron updates, normalisation (folded into the weights for deployment), pooling and memory
  traffic are not counted, as in the papers that report such estimates.

Energy per operation, 32-bit floating point in 45 nm CMOS, from M. Horowitz, "Computing's
energy problem (and what we can do about it)", ISSCC 2014: a multiply costs 3.7 pJ and an add
0.9 pJ, hence ``E_MAC = 3.7 + 0.9 = 4.6 pJ`` and ``E_AC = 0.9 pJ``. Override them with
``EnergyConstants(e_mac=..., e_ac=...)`` (or ``inflor analyze --e-mac --e-ac``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

#: 45 nm, 32-bit float (Horowitz, ISSCC 2014): MAC = mult 3.7 pJ + add 0.9 pJ; AC = add 0.9 pJ.
E_MAC_PJ = 4.6
E_AC_PJ = 0.9

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class EnergyConstants:
    """Energy per operation in picojoules (defaults: 45 nm, 32-bit float, Horowitz 2014)."""

    e_mac: float = E_MAC_PJ
    e_ac: float = E_AC_PJ

    def __post_init__(self):
        if not (self.e_mac > 0 and self.e_ac > 0):
            raise ValueError(f"energy constants must be > 0 pJ, got e_mac={self.e_mac}, e_ac={self.e_ac}")


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> tuple[int, int]:
    """``(MACs, rows)`` of one call: the multiply-accumulates of the whole call and the number of
    independent rows (samples × time steps) it processed."""
    if isinstance(module, nn.Linear):
        rows = out.numel() // module.out_features
        return rows * module.in_features * module.out_features, rows
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        spatial = len(module.kernel_size)
        rows = out.shape[0] if out.dim() == spatial + 2 else 1
        return out.numel() * per_out, rows
    raise TypeError(f"cannot count operations of {type(module).__name__}")


class _LayerOps:
    def __init__(self, kind: str):
        self.kind = kind
        self.macs = 0          # summed over all calls and batches
        self.rows = 0
        self.in_sum = 0.0
        self.in_numel = 0
        self.in_binary = True
        self.order: int | None = None


class OpCounter:
    """Forward hooks on every conv/linear layer counting MACs and the mean of their inputs.

    Call ``end_batch(batch_size)`` after each forward so per-sample numbers can be formed.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: dict[str, _LayerOps] = {}
        self.samples = 0
        self._handles: list = []
        self._calls = 0
        self._modules = [(n, m) for n, m in model.named_modules() if isinstance(m, COUNTED)]

    def attach(self) -> "OpCounter":
        if not self._handles:
            for name, m in self._modules:
                self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()

    def _hook(self, name: str):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            rec = self.layers.get(name)
            if rec is None:
                rec = self.layers[name] = _LayerOps(type(module).__name__)
            if rec.order is None:
                rec.order = self._calls
                self._calls += 1
            macs, rows = layer_macs(module, x, output)
            rec.macs += macs
            rec.rows += rows
            rec.in_sum += float(x.double().sum())
            rec.in_numel += x.numel()
            if rec.in_binary:
                rec.in_binary = bool(((x == 0) | (x == 1)).all())
        return hook

    def end_batch(self, batch_size: int) -> None:
        self.samples += int(batch_size)

    def report(self, constants: EnergyConstants | None = None, analog_layers: list[str] | None = None) -> dict:
        """Per-layer and total MACs, SOPs and energy per sample (see the module docstring).

        ``analog_layers``: layers counted as MACs·T at E_MAC (default: the first layer called).
        """
        c = constants or EnergyConstants()
        if self.samples == 0 or not self.layers:
            raise ValueError("no forward pass was counted")
        ordered = sorted(self.layers.items(), key=lambda kv: kv[1].order)
        analog = set(analog_layers) if analog_layers is not None else {ordered[0][0]}
        layers = {}
        tot = {"ann_macs": 0.0, "snn_macs": 0.0, "sops": 0.0, "ann_energy_pj": 0.0, "snn_energy_pj": 0.0}
        for name, r in ordered:
            timesteps = r.rows / self.samples               # T·(calls per sample)
            ann_macs = r.macs / r.rows if r.rows else 0.0    # one ANN pass, per sample
            dense = r.macs / self.samples                    # MACs · T per sample
            rate = r.in_sum / r.in_numel if r.in_numel else 0.0
            is_analog = name in analog
            sops = 0.0 if is_analog else dense * rate
            snn_macs = dense if is_analog else 0.0
            e_snn = c.e_mac * snn_macs + c.e_ac * sops
            e_ann = c.e_mac * ann_macs
            layers[name] = {"type": r.kind, "ann_macs": ann_macs, "timesteps": timesteps,
                            "input_mean": rate, "input_rate": None if is_analog else rate, "input_binary": r.in_binary, "analog_input": is_analog,
                            "snn_macs": snn_macs, "sops": sops,
                            "snn_energy_pj": e_snn, "ann_energy_pj": e_ann}
            tot["ann_macs"] += ann_macs
            tot["snn_macs"] += snn_macs
            tot["sops"] += sops
            tot["ann_energy_pj"] += e_ann
            tot["snn_energy_pj"] += e_snn
        tot["energy_ratio_ann_over_snn"] = (tot["ann_energy_pj"] / tot["snn_energy_pj"]
                                            if tot["snn_energy_pj"] else None)
        return {"constants_pj": asdict(c), "source": "Horowitz, ISSCC 2014 (45 nm, 32-bit float)",
                "samples": self.samples, "layers": layers, "total": tot}
