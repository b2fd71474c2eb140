"""``inflor reproduce`` on tiny tables (tiny model, one or two short epochs on the digits), and
docs/reproduction.md against the records it is generated from."""
import json
import statistics
from pathlib import Path

import pytest

from inflor.commands import reproduction_doc
from inflor.commands.reproduction import list_tables, load_table, render_table
from inflor.cli import main

TINY = ["model.options={timesteps: 1, width: 4, neuron: srif, norm: tdbn}", "train.epochs=1",
        "train.max_steps_per_epoch=2", "train.tensorboard=false", "train.progress=none", "data.test_batch_size=400",
        "train.device=cpu"]

TABLE = """\
title: tiny
columns: [Neuron, Loss]
rows:
  - {key: srif, cells: [SRIF, CE], recipe: default}
  - key: warm
    cells: [SRIF, CE after an MPD-Loss warm-up]
    recipe: default
    overrides: ["stages={warmup: {loss: {mpd: {weight: 2.0}}, train: {epochs: 1, max_steps_per_epoch: 1}}, main: {}}"]
  - {key: cifar, cells: [SRIF, CE on CIFAR-10], recipe: default, overrides: [data.name=cifar10, "data.root=%s"]}
"""


def test_reproduce_a_tiny_table(tmp_path, capsys):
    table = tmp_path / "tiny.yaml"
    table.write_text(TABLE % (tmp_path / "no-data"))
    out = tmp_path / "rep"
    assert main(["reproduce", str(table), "--seeds", "2", "--out", str(out), *TINY]) == 1   # one row could not run
    rec = json.loads((out / "reproduce.json").read_text())
    assert rec["table"] == "tiny" and rec["seeds"] == 2 and rec["command"].startswith(f"inflor reproduce {table} --seeds 2")
    srif, warm, cifar = rec["rows"]
    for row in (srif, warm):
        bests = [json.loads((out / row["key"] / f"seed{s}" / "summary.json").read_text())["best_test_acc"]
                 for s in (0, 1)]
        res = row["result"]
        assert res["runs"] == 2 and [s["best_acc"] for s in res["seeds"]] == pytest.approx(bests)
        assert res["best_acc_mean"] == pytest.approx(statistics.fmean(bests))
        assert res["best_acc_std"] == pytest.approx(statistics.stdev(bests))
    # the staged row ran both stages in every seed
    s = json.loads((out / "warm" / "seed1" / "summary.json").read_text())
    assert s["main_stage"] == "main" and [e["status"] for e in s["stages"]] == ["completed", "completed"]
    assert "result" not in cifar and cifar["error"].startswith("dataset files not found")
    md = (out / "reproduce.md").read_text()
    assert render_table(rec) in md and "| SRIF | CE | " in md and "reported" not in md and "not run: dataset files not found" in md
    # the same command again reuses every completed seed
    capsys.readouterr()
    assert main(["reproduce", str(table), "--seeds", "2", "--out", str(out), "--rows", "srif,warm", *TINY]) == 0
    assert capsys.readouterr().out.count("completed earlier") == 4


def test_reproduce_a_paper_row_with_its_warm_start(tmp_path):
    """RecDis Table 1 "CIFARNet, None" through its recipe (stages and all), shrunk onto the digits."""
    out = tmp_path / "rep"
    assert main(["reproduce", "recdis_tab1", "--rows", "recdis_tab1_c10_cifarnet_none", "--seeds", "1",
                 "--out", str(out), *TINY, "model.name=tinyconv", "data.name=digits", "data.options={}",
                 "data.workers=0", "data.batch_size=32", "stages.warmup.train.max_steps_per_epoch=1"]) == 0
    row, = json.loads((out / "reproduce.json").read_text())["rows"]
    assert row["cells"] == ["CIFARNet", "None"] and row["reported"] == 0.8983
    run = out / "recdis_tab1_c10_cifarnet_none" / "seed2022"                 # the recipe's seed
    assert json.loads((run / "main" / "summary.json").read_text())["config"]["loss"]["task"] == "ce_per_step"
    assert (run / "main" / "init.json").is_file()
    md = (out / "reproduce.md").read_text()
    diff = 100 * (row["result"]["best_acc_mean"] - 0.8983)
    assert f"| CIFARNet | None | 89.83 | {100 * row['result']['best_acc_mean']:.2f} ± 0.00 | {diff:+.2f} |" in md


def test_reproduce_errors(capsys):
    assert main(["reproduce", "imloss_tab9"]) == 1
    assert "no table 'imloss_tab9'" in capsys.readouterr().err
    assert main(["reproduce", "recdis_tab1", "--rows", "nope"]) == 1
    assert "--rows: no row nope in recdis_tab1" in capsys.readouterr().err
    assert main(["reproduce", "--list"]) == 0
    assert capsys.readouterr().out.split() == list_tables()


DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_reproduction_page_is_what_the_records_generate():
    records = reproduction_doc.read_records(DOCS / "reproduction")
    assert (DOCS / "reproduction.md").read_text() == reproduction_doc.render(records), \
        "docs/reproduction.md is out of date: run python -m inflor.commands.reproduction_doc"


def test_the_digits_record_is_the_shipped_table_run_with_three_seeds():
    rec = json.loads((DOCS / "reproduction" / "digits.json").read_text())
    table = load_table("digits")
    assert [(r["key"], r["cells"], r["overrides"]) for r in rec["rows"]] == \
        [(r.key, r.cells, r.overrides) for r in table.rows]
    assert rec["seeds"] == 3 and rec["command"].startswith("inflor reproduce digits --seeds 3")
    for r in rec["rows"]:            # every mean ± std is that of its seeds' accuracies
        res = r["result"]
        best = [s["best_acc"] for s in res["seeds"]]
        final = [s["final_acc"] for s in res["seeds"]]
        assert res["runs"] == 3 and [s["seed"] for s in res["seeds"]] == [0, 1, 2], r["key"]
        assert all(s["status"] == "completed" and s["epochs_done"] == 8 for s in res["seeds"]), r["key"]
        assert res["best_acc_mean"] == pytest.approx(statistics.fmean(best)), r["key"]
        assert res["best_acc_std"] == pytest.approx(statistics.stdev(best)), r["key"]
        assert res["final_acc_mean"] == pytest.approx(statistics.fmean(final)), r["key"]
        assert all(0 <= a <= 1 for a in best + final) and all(f <= b for f, b in zip(final, best)), r["key"]
