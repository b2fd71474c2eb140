"""The same hard-reset LIF neuron in SpikingJelly, snnTorch and Norse, behind one interface.

Each adapter is an ``nn.Module`` that takes ``[T, B, ...]`` and returns spikes ``[T, B, ...]``
with no state left between calls, used the way each library's documentation shows (its own
default surrogate unless stated). Settings: V_th = 0.5, reset to 0, membrane decay 0.25:

* SpikingJelly ``LIFNode(tau=4/3, decay_input=False, v_reset=0.0, step_mode="m")``:
  H = V − (V − 0)/τ + X = 0.25·V + X, exactly inflor's ``lif`` preset; surrogate Sigmoid(α=4)
  (its default); default backend (the torch/CPU path; there is no other on CPU).
* snnTorch ``Leaky(beta=0.25, threshold=0.5, reset_mechanism="zero")`` in a Python loop over T
  (its documented usage); surrogate atan (its default). Its reset is delayed by one step.
* Norse ``LIFBoxCell`` (LIF without synaptic current) with ``tau_mem_inv = 750``, ``dt = 1e-3``:
  V ← V + 0.75·(−V + X) = 0.25·V + 0.75·X, in a Python loop over T; surrogate SuperSpike
  (its default).

Missing libraries are skipped (``available()``); install them with ``pip install -e '.[bench]'``.
"""
from __future__ import annotations

import importlib.metadata
import warnings

import torch
from torch import nn


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class SJLIF(nn.Module):
    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spikingjelly.activation_based import functional, neuron
        self._reset = functional.reset_net
        self.node = neuron.LIFNode(tau=4.0 / 3.0, decay_input=False, v_threshold=0.5, v_reset=0.0,
                                   step_mode="m")

    def forward(self, x):
        self._reset(self.node)
        return self.node(x)


class SJLIFFused(SJLIF):
    """``SJLIF`` (same neuron, same settings) through SpikingJelly's functional entry
    ``lif_multi_step`` with a float32 initial state. That is the profile its registered kernels
    take for float32, float16 and bfloat16 inputs; the module path keeps the state in the input's
    dtype, which sends half-precision inputs to its Python reference. On CUDA SpikingJelly picks
    the kernels itself (its native extension if built, else Triton, else the reference): see
    ``sj_implementation``."""

    def forward(self, x):
        from spikingjelly.activation_based.functional import lif_multi_step
        n = self.node
        v0 = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
        spikes, _, _ = lif_multi_step(x, v0, n.tau, n.decay_input, n.v_threshold, n.v_reset,
                                      n.surrogate_function, n.detach_reset)
        return spikes


def sj_implementation(device: torch.device) -> str:
    """The implementation SpikingJelly binds its LIF to on ``device`` ("torch-reference" on the
    CPU; on CUDA "cuda", "triton" or "torch"), as its ``neuron_implementation`` reports it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based.functional import neuron_implementation
    return str(neuron_implementation("lif", torch.device(device))["implementation"])


class SnnTorchLIF(nn.Module):
    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import snntorch
        self.node = snntorch.Leaky(beta=0.25, threshold=0.5, reset_mechanism="zero")

    def forward(self, x):
        mem = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            spk, mem = self.node(x[t], mem)
            out.append(spk)
        return torch.stack(out)


class NorseLIF(nn.Module):
    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import norse.torch as norse
        p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(750.0), v_th=torch.tensor(0.5),
                                   v_reset=torch.tensor(0.0))
        self.node = norse.LIFBoxCell(p, dt=1e-3)

    def forward(self, x):
        state = None
        out = []
        for t in range(x.shape[0]):
            z, state = self.node(x[t], state)
            out.append(z)
        return torch.stack(out)


PEERS = {
    "SpikingJelly": ("spikingjelly", SJLIF),
    "snnTorch": ("snntorch", SnnTorchLIF),
    "Norse": ("norse", NorseLIF),
}


def available() -> dict[str, tuple[str, type]]:
    """name -> (version, adapter class) for the peers that import on this machine."""
    out = {}
    for name, (dist, cls) in PEERS.items():
        version = _version(dist)
        if version is None:
            continue
        try:
            cls()(torch.zeros(2, 1, 3))
        except Exception as exc:  # a peer that installs but does not run here
            warnings.warn(f"{name} {version} is installed but failed to run: {exc}")
            continue
        out[name] = (version, cls)
    return out
