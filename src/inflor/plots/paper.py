"""The papers' figures: MPR response curves, ESG's schedule and the redistribution of a
membrane distribution by MPR."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .figure import _save, whole_epochs
from .layers import H_UNIT


def plot_mpr_curves(path, ks: Sequence[float] = (1, 3, 5, 7), v_threshold: float = 0.5) -> Path:
    """MPR response curves: InfLoR φ (Eq. 10, k = 3) and the AAAI φ for several k (AAAI Fig. 2,
    InfLoR Fig. 3), with the step function Θ(u − V_th) and the identity."""
    from ..mpr import phi_inflor, phi_tanh

    u = torch.linspace(-1.0, 2.0, 1201, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    ax = axes[0]
    ax.plot(u, phi_inflor(u, 3.0), color="darkorange", linewidth=2, label="φ InfLoR (Eq. 10, k = 3)")
    ax.set_title("InfLoR-SNN MPR (Fig. 3)")
    ax2 = axes[1]
    for k in ks:
        ax2.plot(u, phi_tanh(u, float(k)), linewidth=1.4, label=f"k = {k:g}")
    ax2.set_title("AAAI'22 MPR for several k (Fig. 2)")
    for a in axes:
        a.plot(u, (u >= v_threshold).double(), color="royalblue", linewidth=1.2, label="spike Θ(u − V_th)")
        a.plot(u, u, color="gray", linestyle=":", linewidth=1, label="identity")
        a.axvline(v_threshold, color="crimson", linestyle="--", linewidth=0.8)
        a.set_xlabel(f"membrane potential u {H_UNIT}")
        a.set_ylabel(f"φ(u) {H_UNIT}")
        a.set_ylim(-1.0, 2.0)
        a.grid(alpha=0.3)
        a.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_esg(path, k_min: float = 1.0, k_max: float = 10.0, num_epochs: int = 1000,
             ks: Sequence[float] = (1, 3, 10)) -> Path:
    """ESG (IM-Loss Fig. 3): the asymptotic tanh function and its gradient for several k, and the
    schedule K(i) of Eq. 15 over the epochs."""
    from ..surrogate import Tanh, esg_k

    x = torch.linspace(-1.5, 1.5, 1201, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    for k in ks:
        s = Tanh(float(k))
        axes[0].plot(x, s.primitive(x), label=f"k = {k:g}")
        axes[1].plot(x, s.grad(x), label=f"k = {k:g}")
    axes[0].plot(x, (x >= 0).double(), color="royalblue", linewidth=1.2, label="spike Θ(x)")
    axes[0].set_title("asymptotic function ½tanh(kx) + ½")
    axes[0].set_ylabel("φ_k(x)")
    axes[1].set_title("its gradient (k/2)(1 − tanh²(kx))")
    axes[1].set_ylabel("g(x)")
    for a in axes[:2]:
        a.set_xlabel("x = Ĥ − V_th")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    i = np.arange(num_epochs)
    axes[2].plot(i, [esg_k(e, num_epochs, k_min, k_max) for e in i], color="seagreen")
    axes[2].set_title(f"ESG schedule K(i), K ∈ [{k_min:g}, {k_max:g}], N = {num_epochs}")
    axes[2].set_xlabel("epoch i")
    axes[2].set_ylabel("K(i)")
    whole_epochs(axes[2])
    axes[2].grid(alpha=0.3)
    return _save(fig, path)


def plot_redistribution(path, samples: int = 100_000, seed: int = 0, mean: float = 0.5, std: float = 1.0,
                        k: float = 3.0, v_threshold: float = 0.5) -> tuple[Path, dict]:
    """InfLoR Fig. 4: ``samples`` draws of N(mean, std) before and after the InfLoR MPR; returns
    the path and the two quantization errors (≈ 0.45 and 0.05 for N(½, 1))."""
    from ..analysis import quantization_error
    from ..mpr import phi_inflor

    g = torch.Generator().manual_seed(seed)
    u = torch.randn(samples, generator=g, dtype=torch.float64) * std + mean
    phi = phi_inflor(u, k)
    qe = (float(quantization_error(u, v_threshold)), float(quantization_error(phi, v_threshold)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, data, color, title, name, q in (
            (axes[0], u, "steelblue", f"N({mean:g}, {std:g}) before MPR", "u", qe[0]),
            (axes[1], phi, "darkorange", "after MPR φ(u)", "φ(u)", qe[1])):
        ax.hist(data.numpy(), bins=160, range=(mean - 3 * std, mean + 3 * std), density=True, color=color,
                alpha=0.85, label=f"{name} of {samples} samples")
        ax.axvline(v_threshold, color="crimson", linestyle="--", linewidth=1.2, label=f"V_th = {v_threshold:g}")
        ax.set_title(f"{title}  (quant. error {q:.3f})", fontsize=10)
        ax.set_xlabel(f"membrane potential {name} {H_UNIT}")
        ax.set_ylabel("density (fraction / unit)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path), {"samples": samples, "seed": seed, "quantization_error_before": qe[0],
                              "quantization_error_after": qe[1]}
