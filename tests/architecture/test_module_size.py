"""No source module of ``inflor`` is longer than ``MAX_LINES`` lines (issue 12: a module does one
job; a longer one is split, as ``inflor.fused`` and ``inflor.plots`` were into packages). Tests
(``test_*.py``) are not source modules and are not counted."""
from pathlib import Path

import inflor

ROOT = Path(inflor.__file__).parent
MAX_LINES = 450


def _line_count(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for _ in f)


def too_long(root: Path = ROOT, limit: int = MAX_LINES) -> dict[str, int]:
    """{path relative to ``root``: line count} of every ``*.py`` under ``root`` (``test_*.py``
    left out) with more than ``limit`` lines."""
    return {str(p.relative_to(root)): n for p in sorted(root.rglob("*.py"))
            if not p.name.startswith("test_") and (n := _line_count(p)) > limit}


def test_no_source_module_is_longer_than_the_limit():
    assert too_long() == {}, f"split these modules (at most {MAX_LINES} lines each)"


def test_the_check_sees_a_long_module_and_skips_tests(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * 4)
    (tmp_path / "pkg" / "short.py").write_text("x = 1\n" * 3)
    (tmp_path / "test_long.py").write_text("x = 1\n" * 9)
    assert too_long(tmp_path, limit=3) == {str(Path("pkg") / "long.py"): 4}
