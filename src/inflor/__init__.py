"""inflor: directly trained spiking neural networks with information-loss-reducing methods.

SRIF and MPR (InfLoR-SNN), MPD-Loss (RecDis-SNN), IM-Loss and ESG (IM-Loss), tdBN.
"""
from . import analysis, functional, losses, mpr, neuron, norm, surrogate  # noqa: F401
from .neuron import IFNode, LIFNode, make_neuron  # noqa: F401

__version__ = "0.1.0"
