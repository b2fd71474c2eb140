"""inflor: directly trained spiking neural networks with information-loss-reducing methods.

SRIF and MPR (InfLoR-SNN), MPD-Loss (RecDis-SNN), IM-Loss and ESG (IM-Loss), tdBN.
"""
__version__ = "0.1.0"   # set first: modules imported below record it (inflor.runs.checkpoint.versions)

from . import analysis, functional, losses, mpr, neuron, norm, surrogate  # noqa: F401,E402
from .neuron import IFNode, LIFNode, make_neuron  # noqa: F401,E402
