"""``inflor.fused`` is a package of one-layer modules; the package keeps exposing every name of
them (as the single module it replaced did), and a name set on the package (a test's
``monkeypatch.setattr(fused, ...)``) is the one its modules use."""
import ast
from pathlib import Path

import torch

import inflor.fused as fused
from inflor.functional import NeuronConfig
from inflor.surrogate import Rectangle


def _defined(module) -> list[str]:
    names = []
    for node in ast.parse(Path(module.__file__).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


def test_every_name_of_the_modules_is_an_attribute_of_the_package():
    for part in fused._PARTS:
        for name in _defined(part):
            assert getattr(fused, name) is getattr(part, name), f"inflor.fused.{name} ({part.__name__})"


def test_a_name_set_on_the_package_is_used_by_its_modules(monkeypatch):
    real = fused._run
    assert fused.ops._run is real and fused.compilation._run is real
    calls = []
    monkeypatch.setattr(fused, "_run", lambda direction, *a: calls.append(direction) or real(direction, *a))
    assert fused.ops._run is fused._run and fused.compilation._run is fused._run
    fused.fused_neuron(torch.ones(2, 3, dtype=torch.float64), NeuronConfig(), Rectangle())
    assert calls == ["fwd"]
    monkeypatch.setattr(fused, "MAX_UNROLL", 3)
    assert fused.ops._chunks(7) == [(0, 3), (3, 6), (6, 7)]
    monkeypatch.undo()
    assert fused.ops._run is real and fused.compilation._run is real and fused.ops.MAX_UNROLL == 16
