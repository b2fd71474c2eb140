"""``inflor export``: write a trained network as NIR and/or single-step ONNX (docs/deploy.md).

Examples:

    inflor export runs/default-20260101-120000 --nir model.nir --onnx model.onnx
    inflor export runs/r19/checkpoints/best.pt --onnx r19.onnx --input-size 32
    inflor export model.nir --onnx model.onnx          # a NIR graph inflor can build, as ONNX

A run directory means its final weights (``checkpoints/last.pt``; of a run made of stages, the
last stage's). BN and MPR are folded for inference; soft-reset neurons become NIR's
integrator + threshold + delayed-reset subgraph; a layer NIR cannot express is refused by name.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="write a trained network as NIR and/or single-step ONNX",
                              description=__doc__.replace("``", ""),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT",
                   help="a run directory, a checkpoint written by inflor train, or a .nir file")
    p.add_argument("--nir", metavar="FILE", help="write the NIR graph to FILE")
    p.add_argument("--onnx", metavar="FILE", help="write the single-step ONNX graph to FILE")
    p.add_argument("--dt", type=float, default=1.0, metavar="DT",
                   help="the NIR graph's time step (default 1; the neuron parameters are scaled to it)")
    p.add_argument("--input-size", type=int, metavar="N",
                   help="input height = width (default: the model's input_size, else 32)")
    p.set_defaults(func=run)
    return p


def checkpoint_of(source: Path) -> Path:
    """The checkpoint file ``source`` names: itself, or a run directory's final ``last.pt``."""
    from inflor.errors import CheckpointError
    from inflor.runs.summary import final_run_dir

    if source.is_file():
        return source
    if source.is_dir():
        last = final_run_dir(source) / "checkpoints" / "last.pt"
        if last.is_file():
            return last
        raise CheckpointError(f"{source} is not an inflor run directory: it has no checkpoints/last.pt")
    raise CheckpointError(f"{source} does not exist; expected a run directory, a checkpoint (.pt) or a .nir file")


def load_source(source: Path):
    """(model in evaluation mode, description) for a run, a checkpoint or a .nir file."""
    if source.suffix == ".nir" and source.is_file():
        from inflor.deploy.nir import NIRExportError, from_nir
        try:
            return from_nir(source).eval(), f"NIR graph {source}"
        except NIRExportError as e:
            msg = str(e)
            raise NIRExportError(msg if msg.startswith(str(source)) else f"{source}: {msg}") from e
    from inflor.runs.checkpoint import build_model_from_checkpoint, load_checkpoint
    path = checkpoint_of(source)
    ck = load_checkpoint(path)
    return build_model_from_checkpoint(ck).eval(), f"{ck['model_name']} from {path}"


def run(args) -> int:
    from inflor.errors import ConfigError

    if not args.nir and not args.onnx:
        raise ConfigError("inflor export: give --nir FILE and/or --onnx FILE")
    if args.dt <= 0:
        raise ConfigError(f"--dt must be > 0, got {args.dt}")
    model, what = load_source(Path(args.source))
    size = args.input_size or getattr(model, "input_size", None) or 32
    channels = getattr(model, "in_channels", None)
    if channels is None:
        raise ConfigError(f"{args.source}: the graph's input shape is unknown; cannot export it")
    if args.nir:
        import nir
        from inflor.deploy.nir import NIRExportError, to_nir
        try:
            graph = to_nir(model, input_shape=(channels, size, size), dt=args.dt)
        except NIRExportError as e:
            raise NIRExportError(f"{what}: {e}") from e
        nir.write(args.nir, graph)
        print(f"wrote {args.nir}: NIR graph of {what}, {len(graph.nodes)} nodes, dt={args.dt:g}")
    if args.onnx:
        import torch
        from inflor.deploy.onnx import to_onnx
        to_onnx(model, args.onnx, example=torch.zeros(1, channels, size, size))
        print(f"wrote {args.onnx}: single-step ONNX graph (x_t, state...) -> (logits_t, state...) of {what}")
    return 0
