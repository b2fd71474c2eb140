"""The import rule, read from the source (ast) of every module of ``inflor``:

    commands / cli  ->  train  ->  analysis  ->  {config, runs, data, models}  ->  core
    commands / cli  ->  deploy  ->  {runs, data, models}  ->  core

``analysis`` never imports ``train`` or ``config``; ``runs``, ``data`` and ``models`` never import
``train``, ``analysis`` or ``commands``; the core imports none of the packages above it. Every
module imports on its own, and the module-level imports form no cycle."""
import ast
import importlib
from pathlib import Path

import pytest

import inflor

ROOT = Path(inflor.__file__).parent

#: package (first name under inflor) -> its group; modules directly in inflor/ are the core
GROUP = {"commands": "commands", "cli": "commands", "__main__": "commands", "train": "train",
         "analysis": "analysis", "plots": "analysis", "config": "config", "runs": "runs", "data": "data",
         "models": "models", "deploy": "deploy"}
#: what each group may import besides itself and the core
ALLOWED = {
    "commands": {"train", "analysis", "config", "runs", "data", "models", "deploy"},
    "deploy": {"runs", "data", "models"},
    "train": {"analysis", "config", "runs", "data", "models"},
    "analysis": {"runs", "data", "models"},
    "config": {"runs", "data", "models"},
    "runs": {"data", "models"},
    "data": set(),
    "models": set(),
    "core": set(),
}
#: known exceptions (none left; list (module, group) pairs here only with a reason)
KNOWN: set = set()


def _modules():
    for p in sorted(ROOT.rglob("*.py")):
        if p.name.startswith("test_"):
            continue
        rel = p.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield (name[: -len(".__init__")] if name.endswith(".__init__") else name), p


def _group(module: str) -> str:
    parts = module.split(".")
    return "facade" if len(parts) == 1 else GROUP.get(parts[1], "core")


def _imports(module: str, path: Path, source: str | None = None):
    """``(imported inflor module, module-level?)`` for every import in the file."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if source is None else source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: (None if is_pkg else -1)]
                base = base[: len(base) - node.level + 1]
                names = [".".join(base + [node.module])] if node.module else \
                    [".".join(base + [a.name]) for a in node.names]
            else:
                names = [node.module]
        else:
            continue
        for n in names:
            if n and n.split(".")[0] == "inflor":
                yield n, node.col_offset == 0


MODULES = dict(_modules())


def violations(module: str, path: Path, source: str | None = None) -> list[str]:
    """The imports of ``module`` (its file ``path``, or ``source``) that break the rule."""
    g = _group(module)
    if g == "facade":
        return []
    bad = []
    for target, _ in _imports(module, path, source):
        tg = _group(target)
        if tg in (g, "core") or (tg == "facade" and target == "inflor"):
            continue
        if tg not in ALLOWED[g] and (module, tg) not in KNOWN:
            bad.append(f"{module} ({g}) imports {target} ({tg})")
    return bad


def test_every_import_follows_the_rule():
    bad = [v for module, path in MODULES.items() for v in violations(module, path)]
    assert not bad, "\n".join(bad)


def test_analysis_never_imports_train_or_config_except_the_known_cases():
    found = {(m, _group(t)) for m, p in MODULES.items() if _group(m) == "analysis"
             for t, _ in _imports(m, p) if _group(t) in ("train", "config")}
    assert found <= KNOWN, found - KNOWN


def test_module_level_imports_have_no_cycle():
    graph = {m: {t for t, top in _imports(m, p) if top and t in MODULES and t != m} for m, p in MODULES.items()}
    state: dict = {}

    def visit(m, stack):
        state[m] = "open"
        for t in graph[m]:
            if state.get(t) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_rule_catches_a_violation():
    here = Path("inflor/analysis/x.py")
    assert violations("inflor.analysis.x", here, "def f():\n    from ..train import trainer\n") == \
        ["inflor.analysis.x (analysis) imports inflor.train (train)"]
    assert violations("inflor.analysis.x", here, "import inflor.config.schema\n") != []
    assert violations("inflor.runs.x", Path("inflor/runs/x.py"), "from ..analysis import probe\n") != []
    assert violations("inflor.neuron", Path("inflor/neuron.py"), "from .runs import layout\n") != []
    assert violations("inflor.analysis.x", here, "from ..runs.layout import RunDir\nfrom .. import errors\n") == []
    assert violations("inflor.deploy.x", Path("inflor/deploy/x.py"), "from ..train import trainer\n") != []


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ("inflor.__main__",)])
def test_every_module_imports(module):
    importlib.import_module(module)
