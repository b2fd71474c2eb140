"""Tables to reproduce: every recipe of a paper table (in the paper's layout), or a table file
(rows of recipe + overrides, such as the ablations on the bundled digits); and the markdown of
their results, "reproduced (mean ± std)" beside "reported", as ``inflor reproduce`` writes it and
``docs/reproduction.md`` shows it.

A paper table's id is its recipes' prefix (``imloss_tab1``, ``recdis_tab4``, ...): its rows are
those recipes, their cells the recipe's ``paper.row`` split into the paper's columns (``LAYOUTS``),
in the paper's order, reported accuracy from ``paper.reported_acc``. A table file is a YAML file
(``src/inflor/recipes/tables/NAME.yaml`` ships ``digits``)::

    title: ...
    description: ...              (optional; shown in docs/reproduction.md)
    columns: [Neuron, Norm, Loss]
    rows:
      - {key: srif_tdbn, cells: [SRIF, tdBN, CE], recipe: default, overrides: [...], note: ...}
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis.tables import markdown_table
from ..errors import AnalysisError
from ..train.config import list_recipes, load_config, read_yaml, recipes_dir
from ..train.recipes_doc import _row_sort

__all__ = ["Row", "Table", "LAYOUTS", "paper_tables", "load_table", "list_tables", "render_table"]


@dataclass
class Row:
    key: str                     # the row's folder under the reproduction's OUT
    cells: list[str]             # the row's label, one cell per column of the table
    recipe: str
    overrides: list[str] = field(default_factory=list)
    reported: float | None = None        # fraction
    reported_std: float | None = None
    note: str = ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[Row]
    description: str = ""        # what the table is for (table files)


def _p(*groups):
    return ["_".join(t) for t in itertools.product(*groups)]


#: Per paper table: the columns ``paper.row`` splits into, and the paper's row order (recipe-name
#: tails after ``<id>_``) where it is not the natural one (dataset, network, timestep).
LAYOUTS: dict[str, dict] = {
    "inflor_tab1": {"columns": ["Dataset", "Architecture", "Neuron model", "Timestep"],
                    "order": [f"{d}_resnet20_{n}_{t}" for d, t, n in itertools.product(
                        ["c10", "c100"], ["t2", "t4", "t6", "t8"], ["lif", "if", "srif"])]},
    "inflor_tab2": {"columns": ["Dataset", "Architecture", "Method", "Timestep"],
                    "order": [f"{x}_t4" for x in _p(["c10", "c100"], ["resnet20", "resnet19"], ["srif", "srif_mpr"])]},
    "inflor_tab4": {"columns": ["Dataset", "Method", "Architecture", "Timestep"]},
    "inflor_tab5": {"columns": ["Dataset", "Method", "Architecture", "Timestep"]},
    "mpr_tab1": {"columns": ["Datasets", "Timesteps", "Methods"],
                 "order": [f"{d}_resnet20_{t}_{k}" for d, t, k in itertools.product(
                     ["c10", "c100"], ["t2", "t4", "t6"], ["nompr", "k1", "k3", "k5", "k7"])]},
    "recdis_tab1": {"columns": ["Architecture", "Method"],
                    "order": _p(["c10"], ["cifarnet", "resnet19"], ["none", "d", "s", "m", "mpd"])},
    "recdis_tab4": {"columns": ["Architecture", "Method"],
                    "order": _p(["c10"], ["cifarnet", "resnet19"], ["tdbn", "mpd", "tdbn_mpd"])},
    "recdis_tab5": {"columns": ["Dataset", "Method", "Architecture", "Timestep"]},
    "recdis_tab6": {"columns": ["Dataset", "Method", "Architecture"]},
    "imloss_tab1": {"columns": ["Architecture", "Methods"],
                    "order": _p(["c10"], ["cifarnet", "resnet19"],
                                ["nonorm", "tdbn", "im", "esg", "im_esg", "im_esg_tdbn"])},
    "imloss_tab2": {"columns": ["Dataset", "Method", "Architecture", "Timestep"]},
}


def _recipes_by_table() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in list_recipes():
        m = re.match(r"([a-z]+_tab\d+)_", name)
        if m:
            out.setdefault(m.group(1), []).append(name)
    return out


def _cells(row: str, n: int) -> list[str]:
    cells = [c.strip() for c in row.split(", ", n - 1)]
    return cells + ["–"] * (n - len(cells))


def paper_table(table_id: str) -> Table:
    """The rows of a paper table from its recipes, in the paper's layout."""
    names = _recipes_by_table().get(table_id)
    if not names:
        raise AnalysisError(f"no table {table_id!r}; tables: {', '.join(list_tables())}")
    layout = LAYOUTS[table_id]
    order = [f"{table_id}_{tail}" for tail in layout.get("order", [])]
    if order and sorted(order) != sorted(names):
        raise AnalysisError(f"LAYOUTS[{table_id!r}]['order'] does not name the table's recipes exactly: "
                            f"{sorted(set(order) ^ set(names))}")
    names = order or sorted(names, key=_row_sort)
    rows, title = [], ""
    for name in names:
        p = load_config(name)["paper"]
        title = f"{p['name']}, Table {p['table']}"
        rows.append(Row(key=name, cells=_cells(p["row"], len(layout["columns"])), recipe=name,
                        reported=p["reported_acc"], reported_std=p["reported_std"]))
    return Table(id=table_id, title=title, columns=list(layout["columns"]), rows=rows)


def paper_tables() -> list[str]:
    """The ids of the paper tables (one per table with recipes)."""
    return list(_recipes_by_table())


def tables_dir() -> Path:
    return recipes_dir() / "tables"


def list_tables() -> list[str]:
    """Paper tables, then the shipped table files."""
    return paper_tables() + sorted(p.stem for p in tables_dir().glob("*.yaml"))


def _table_file(path: Path) -> Table:
    shape = "a mapping with title, columns and a list of rows"
    expected = f"expected {shape}"
    raw = read_yaml(path, "table file", AnalysisError, expected=shape)
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list) or not raw["rows"]:
        raise AnalysisError(f"table file {path} is not a table: {expected}")
    if raw.get("columns") is not None and not isinstance(raw["columns"], list):
        raise AnalysisError(f"table file {path}: columns must be a list, got {raw['columns']!r}; {expected}")
    columns = [str(c) for c in raw.get("columns") or []]
    rows, keys = [], set()
    for i, r in enumerate(raw["rows"]):
        where = f"table file {path}, row {i + 1}"
        if not isinstance(r, dict) or not {"key", "cells", "recipe"} <= set(r):
            raise AnalysisError(f"{where}: each row needs key, cells and recipe (and may give overrides, note)")
        unknown = set(r) - {"key", "cells", "recipe", "overrides", "note"}
        if unknown:
            raise AnalysisError(f"{where}: unknown entries {sorted(unknown)}; valid: key, cells, recipe, overrides, note")
        for name in ("cells", "overrides"):
            if r.get(name) is not None and not isinstance(r[name], list):
                raise AnalysisError(f"{where}: {name} must be a list, got {r[name]!r}")
        key = str(r["key"])
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", key) or key in keys:
            raise AnalysisError(f"{where}: key {key!r} must be a unique folder name (letters, digits, _ or -)")
        keys.add(key)
        cells = [str(c) for c in r["cells"]]
        if len(cells) != len(columns):
            raise AnalysisError(f"{where}: {len(cells)} cells for {len(columns)} columns {columns}")
        rows.append(Row(key=key, cells=cells, recipe=str(r["recipe"]), overrides=[str(o) for o in r.get("overrides") or []],
                        note=str(r.get("note") or "")))
    return Table(id=path.stem, title=str(raw.get("title") or path.stem), columns=columns, rows=rows,
                 description=" ".join(str(raw.get("description") or "").split()))


def load_table(spec: str) -> Table:
    """A paper table id, a shipped table file's name, or a path to a table file."""
    if spec in paper_tables():
        return paper_table(spec)
    p = Path(spec).expanduser()
    for cand in (p, tables_dir() / spec, tables_dir() / f"{spec}.yaml"):
        if cand.is_file():
            return _table_file(cand)
    import difflib
    close = difflib.get_close_matches(spec, list_tables(), n=2)
    raise AnalysisError(f"no table {spec!r}: not a paper table, a shipped table file or a file"
                        + (f" (did you mean {' or '.join(close)}?)" if close else "")
                        + f"; tables: {', '.join(list_tables())}")


# --------------------------------------------------------------------------- markdown
def _pct(v, digits=2) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}"


def _pm(mean, std) -> str:
    return "–" if mean is None else f"{100 * mean:.2f} ± {100 * (std or 0.0):.2f}"


def render_table(table: dict, link_runs: bool = True) -> str:
    """Markdown of a reproduction record (``reproduce.json``'s layout; rows without results say
    'not run'): the paper's columns, reported, reproduced best (mean ± std), the difference, the
    final accuracy, the seeds, the rows' notes and the runs' folder (no reported and difference
    columns for a table whose rows report nothing)."""
    notes = any(r.get("note") for r in table["rows"])
    reported = any(r.get("reported") is not None for r in table["rows"])   # a table file's rows report nothing
    headers = list(table["columns"]) + (["reported (%)"] if reported else []) + ["reproduced (%, mean ± std)"] \
        + (["difference (pp)"] if reported else []) + ["final (%, mean ± std)", "seeds"] \
        + (["the paper's claim"] if notes else []) + (["runs"] if link_runs else [])
    lines, prev = [], None
    for r in table["rows"]:
        cells = list(r["cells"])
        if prev is not None:              # the papers' layout: a repeated leading cell is left blank
            for i in range(len(cells) - 1):
                if cells[i] != prev[i]:
                    break
                cells[i] = ""
        prev = list(r["cells"])
        rep = "–" if r.get("reported") is None else _pct(r["reported"]) + (
            f" ± {_pct(r['reported_std'])}" if r.get("reported_std") is not None else "")
        res = r.get("result")
        if not res:
            got, diff, final, seeds = f"not run{': ' + r['error'] if r.get('error') else ''}", "–", "–", "–"
        else:
            got = _pm(res["best_acc_mean"], res["best_acc_std"])
            diff = "–" if r.get("reported") is None else f"{100 * (res['best_acc_mean'] - r['reported']):+.2f}"
            final = _pm(res["final_acc_mean"], res["final_acc_std"])
            seeds = f"{res['runs']}" + (f" of {res['seeds_asked']}" if res["runs"] != res["seeds_asked"] else "")
        row = cells + ([rep] if reported else []) + [got] + ([diff] if reported else []) + [final, seeds] \
            + ([r.get("note") or ""] if notes else [])
        if link_runs:
            row.append(f"`{r['run_dir']}`" if r.get("run_dir") and res else "–")
        lines.append(row)
    return markdown_table(headers, lines)
