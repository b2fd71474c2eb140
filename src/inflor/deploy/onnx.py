"""ONNX export of the single-step function ``(x_t, U_1..U_n) -> (logits_t, U_1'..U_n')``.

The exported graph is ``inflor.deploy.stream.StepModule`` (BN and MPR folded): one time step, the
membranes of the n spiking neurons as explicit inputs and outputs (no hidden state), so a runtime
loops over time by feeding each step's U' back as the next step's U, starting from zeros. Inputs
are named ``x`` and ``state_<i>``, outputs ``logits`` and ``next_state_<i>``; the file's metadata
``inflor_state_names`` lists each state's neuron (module path). The batch dimension is dynamic.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .graph import use_reference
from .stream import step_module


def example_input(model: nn.Module, batch: int = 1, size: int | None = None) -> torch.Tensor:
    """A zero step ``[batch, C, H, W]`` for tracing: H = W = the model's ``input_size`` (or
    ``size``, 32 when neither is known)."""
    size = size or getattr(model, "input_size", None) or 32
    return torch.zeros(batch, getattr(model, "in_channels", 3), size, size)


def initial_state(module, x_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Zero membranes for a sequence of steps shaped like ``x_t`` (shapes from one dry step)."""
    with torch.no_grad():
        _, *u = module(x_t)
    return tuple(torch.zeros_like(v) for v in u)


def to_onnx(model: nn.Module, path, example: torch.Tensor | None = None, opset: int = 17) -> Path:
    """Write the single-step graph of ``model`` to ``path`` (see the module docstring) and return
    the path. ``example``: one step ``[B, C, H, W]`` (default ``example_input(model)``)."""
    import onnx

    path = Path(path)
    # exported from the CPU whatever the model's device, the neurons as plain tensor ops
    module = use_reference(step_module(model).eval().cpu())
    x = example_input(model, batch=2) if example is None else example.detach().cpu().float()
    states = initial_state(module, x)
    n = len(states)
    names_in = ["x"] + [f"state_{i}" for i in range(n)]
    names_out = ["logits"] + [f"next_state_{i}" for i in range(n)]
    dynamic = {name: {0: "batch"} for name in names_in + names_out}
    with torch.no_grad(), warnings.catch_warnings():
        # the neurons' shape checks are Python branches: constant for a traced step, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)     # torch's note on its TorchScript exporter
        torch.onnx.export(module, (x, *states), str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    proto = onnx.load(str(path))
    meta = proto.metadata_props.add()
    meta.key, meta.value = "inflor_state_names", json.dumps(module.state_names)
    onnx.save(proto, str(path))
    onnx.checker.check_model(proto)
    return path


def run_onnx(path, steps) -> torch.Tensor:
    """Run an exported file with onnxruntime over ``steps`` (an iterable of ``[B, C, H, W]``
    tensors), zero membranes at the start; returns the stacked logits ``[T, B, K]``."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    state = None
    out = []
    for x_t in steps:
        x_np = x_t.detach().float().numpy()
        if state is None:
            state = [np.zeros([x_np.shape[0], *i.shape[1:]], dtype=np.float32) for i in inputs[1:]]
        res = sess.run(None, {"x": x_np, **{i.name: s for i, s in zip(inputs[1:], state)}})
        out.append(torch.from_numpy(res[0]))
        state = res[1:]
    return torch.stack(out)
