"""The config package: its import rule, its size rule, and the old import path re-exporting it."""
import ast
from pathlib import Path

import inflor.config as config
import inflor.train.config as shim

PACKAGE = Path(config.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_config_imports_no_train_analysis_or_commands():
    for path in PACKAGE.glob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[:2] in (["inflor", "train"], ["inflor", "analysis"],
                                                                   ["inflor", "commands"], ["inflor", "cli"])}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_no_module_over_450_lines():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, path.name


def test_old_import_path_reexports_every_name():
    assert set(shim.__all__) == set(config.__all__)
    for name in config.__all__:
        assert getattr(shim, name) is getattr(config, name), name
    for name in ("ConfigError", "NOTE_TOPICS", "config_diff", "effective_model_options", "RUNTIME_KEYS"):
        assert name in shim.__all__


def test_old_docs_module_reexports_every_name():
    from inflor.config import docs
    from inflor.train import recipes_doc
    for name in vars(docs):
        if not name.startswith("__"):
            assert getattr(recipes_doc, name) is getattr(docs, name), name
