"""The tables ``inflor reproduce`` runs: paper tables in the paper's layout from the recipes, table
files checked with clear errors, and the markdown of a record."""
import re

import pytest

from inflor.commands.reproduction import LAYOUTS, _recipes_by_table, load_table, paper_tables, render_table
from inflor.analysis.runs import AnalysisError
from inflor.train.config import load_config


def test_every_paper_table_has_a_layout_naming_its_recipes_in_the_papers_order():
    assert set(paper_tables()) == set(LAYOUTS)
    by_table = _recipes_by_table()
    for tid in paper_tables():
        t = load_table(tid)                      # raises if an explicit order misses or adds a recipe
        assert sorted(r.recipe for r in t.rows) == sorted(by_table[tid]), tid
        for r in t.rows:
            p = load_config(r.recipe)["paper"]
            assert len(r.cells) == len(t.columns) and r.reported == p["reported_acc"], (tid, r.recipe)
            assert ", ".join(c for c in r.cells if c != "–") == p["row"], (tid, r.recipe)
    # the papers' orders: IM-Loss Table 1 starts with the baselines, MPR Table 1 with "w/o MPR"
    assert [r.cells[1] for r in load_table("imloss_tab1").rows[:3]] == ["w/o normalization", "w/ tdBN", "w/ IM-Loss"]
    assert [r.cells[2] for r in load_table("mpr_tab1").rows[:2]] == ["w/o MPR", "w/ MPR, k = 1"]
    assert [r.cells[2] for r in load_table("inflor_tab1").rows[:3]] == [
        '"Hard Reset" LIF', '"Hard Reset" IF', '"Soft Reset" IF (SRIF)']


def test_the_digits_table_ships_and_its_rows_resolve():
    t = load_table("digits")
    assert t.columns == ["Neuron", "Normalisation", "Loss"] and len(t.rows) == 11
    for r in t.rows:
        cfg = load_config(r.recipe, r.overrides)          # every row is a valid run
        assert cfg["data"]["name"] == "digits" and cfg["train"]["epochs"] == 8, r.key
    assert load_config("default", next(r for r in t.rows if r.key == "srif_none_warm").overrides)["stages"]


@pytest.mark.parametrize("text, message", [
    ("rows: []", "is not a table: expected a mapping with title, columns and a list of rows"),
    ("columns: [A]\nrows: [{key: a, cells: [x]}]", "row 1: each row needs key, cells and recipe"),
    ("columns: [A]\nrows: [{key: a, cells: [x, y], recipe: default}]", "row 1: 2 cells for 1 columns"),
    ("columns: [A]\nrows: [{key: a, cells: [x], recipe: default}, {key: a, cells: [y], recipe: default}]",
     "row 2: key 'a' must be a unique folder name"),
    ("columns: [A]\nrows: [{key: a, cells: [x], recipe: default, overide: []}]", "unknown entries ['overide']"),
    ("columns: AB\nrows: [{key: a, cells: [x], recipe: default}]", "columns must be a list, got 'AB'"),
    ("columns: [A]\nrows: [{key: a, cells: 5, recipe: default}]", "row 1: cells must be a list, got 5"),
    ("columns: [A]\nrows: [{key: a, cells: [x], recipe: default, overrides: train.epochs=1}]",
     "row 1: overrides must be a list, got 'train.epochs=1'"),
])
def test_table_files_are_checked(tmp_path, text, message):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(AnalysisError, match=re.escape(message)):
        load_table(str(p))


def test_unknown_table_suggests_names():
    with pytest.raises(AnalysisError, match="no table 'imloss_tab9'.*did you mean"):
        load_table("imloss_tab9")


def test_render_puts_reproduced_beside_reported():
    rec = {"columns": ["Architecture", "Method"], "rows": [
        {"key": "a", "cells": ["CIFARNet", "None"], "reported": 0.8983, "run_dir": "runs/x/a",
         "result": {"runs": 3, "seeds_asked": 3, "best_acc_mean": 0.9, "best_acc_std": 0.001,
                    "final_acc_mean": 0.89, "final_acc_std": 0.002}},
        {"key": "b", "cells": ["CIFARNet", "w/ MPD-Loss"], "reported": 0.9208, "error": "dataset files not found"},
        {"key": "c", "cells": ["ResNet19", "None"], "reported": 0.9123, "reported_std": 0.0012, "run_dir": "runs/x/c",
         "result": {"runs": 2, "seeds_asked": 3, "best_acc_mean": 0.9, "best_acc_std": 0.0,
                    "final_acc_mean": None, "final_acc_std": None}}]}
    lines = render_table(rec).splitlines()
    assert lines[0] == ("| Architecture | Method | reported (%) | reproduced (%, mean ± std) | difference (pp) | "
                        "final (%, mean ± std) | seeds | runs |")
    assert lines[2] == "| CIFARNet | None | 89.83 | 90.00 ± 0.10 | +0.17 | 89.00 ± 0.20 | 3 | `runs/x/a` |"
    assert lines[3] == "|  | w/ MPD-Loss | 92.08 | not run: dataset files not found | – | – | – | – |"
    assert lines[4] == "| ResNet19 | None | 91.23 ± 0.12 | 90.00 ± 0.00 | -1.23 | – | 2 of 3 | `runs/x/c` |"
