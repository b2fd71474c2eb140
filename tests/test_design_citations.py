"""Every ``docs/design.md §X`` cited in the source or the tests is a section of docs/design.md, and
nothing there cites the pages that are not in the repository (DESIGN.md, reference-impl.md)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"docs/design\.md`{0,2} §(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", re.M)


def sources() -> list[Path]:
    """The package's modules and the tests (which cite the equations they check), not this file."""
    here = Path(__file__).resolve()
    return [p for d in ("src", "tests") for p in (ROOT / d).rglob("*.py") if p.resolve() != here]


def sections() -> set[str]:
    return set(HEADING.findall((ROOT / "docs" / "design.md").read_text(encoding="utf-8")))


def citations() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sources():
        for sec in CITE.findall(path.read_text(encoding="utf-8")):
            out.setdefault(sec, set()).add(str(path.relative_to(ROOT)))
    return out


def test_headings_are_read():
    assert {"1", "2", "2.1", "4.2", "6.3", "10"} <= sections()


def test_every_cited_section_exists():
    cited = citations()
    assert len(cited) >= 8, cited                 # the pattern finds the citations at all
    missing = {sec: sorted(files) for sec, files in cited.items() if sec not in sections()}
    assert not missing, f"sections cited in src/tests but not headings of docs/design.md: {missing}"


def test_no_citation_of_pages_outside_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in sources()
           if re.search(r"DESIGN\.md|reference-impl", p.read_text(encoding="utf-8"))]
    assert not bad, bad
