"""Deployment: streaming inference, folding for inference, ONNX and NIR export (docs/deploy.md).

``Stream``, ``step_module`` and ``fold_model`` need only torch; ``to_onnx`` needs ``onnx``
(and ``onnxruntime`` to run the file), ``to_nir`` / ``from_nir`` need ``nir``: install them with
``pip install 'inflor[deploy]'``.
"""
from .graph import fold_model, trace  # noqa: F401
from .stream import Stream, StepModule, step_module  # noqa: F401


def to_onnx(*args, **kwargs):
    from .onnx import to_onnx as fn
    return fn(*args, **kwargs)


def to_nir(*args, **kwargs):
    from .nir import to_nir as fn
    return fn(*args, **kwargs)


def from_nir(*args, **kwargs):
    from .nir import from_nir as fn
    return fn(*args, **kwargs)


__all__ = ["Stream", "StepModule", "step_module", "fold_model", "trace", "to_onnx", "to_nir", "from_nir"]
