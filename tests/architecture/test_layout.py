"""The tests live in tests/, not in the package: no ``test_*.py`` under src/ (so the wheel ships
none), and pytest collects only tests/."""
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")   # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]


def test_no_test_module_in_the_package():
    found = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")
             if p.name.startswith("test_") or p.name == "conftest.py"]
    assert not found, f"move these into tests/ (mirroring the packages): {found}"


def test_pytest_collects_tests_only():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert cfg["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    assert cfg["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]
