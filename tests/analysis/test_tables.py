"""The papers' "mean ± std" format and the run tables."""
import json

import pytest

from inflor.analysis.runs import AnalysisError, find_checkpoint
from inflor.analysis.tables import compare_table, mean_std, paper_label, pm, repeat_summary, run_record


def test_mean_std_format():
    assert pm([93.72, 93.84, 93.96]) == "93.84 ± 0.12"
    assert pm([90.0]) == "90.00 ± 0.00"
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    with pytest.raises(ValueError):
        mean_std([])


def test_paper_label():
    assert paper_label({"name": "InfLoR", "table": 4, "row": "ResNet19 T=4", "reported_acc": 0.9649,
                        "reported_std": 0.0008}) == "InfLoR, Table 4, ResNet19 T=4 (96.49 ± 0.08)"
    assert paper_label(None) == "" and paper_label({"name": None}) == ""


def _run(tmp_path, name, accs, status="completed"):
    d = tmp_path / name
    d.mkdir()
    rows = "\n".join(f"{i + 1},{2.0 - i},{3.0 - i},{a},{0.1 * (i + 1)}" for i, a in enumerate(accs))
    (d / "metrics.csv").write_text("epoch,train_loss,task_loss,test_acc,spike_rate\n" + rows + "\n")
    (d / "summary.json").write_text(json.dumps({
        "name": name, "status": status, "best_test_acc": max(accs), "final_test_acc": accs[-1],
        "best_epoch": accs.index(max(accs)) + 1, "epochs_done": len(accs), "epochs": len(accs),
        "wall_time": 12.5, "config": {"train": {"seed": 7}}, "paper": {"name": "IM-Loss", "table": 2}}))
    return d


def test_records_and_tables(tmp_path):
    a = run_record(_run(tmp_path, "a", [0.5, 0.75, 0.7]))
    assert a["best_acc"] == 75.0 and a["final_acc"] == pytest.approx(70.0) and a["seed"] == 7
    assert a["curve"]["test_acc"] == {"epoch": [1.0, 2.0, 3.0], "value": [50.0, 75.0, pytest.approx(70.0)]}
    # the task loss (no regularisers), not the total, and the spike rate
    assert a["loss_column"] == "task_loss" and a["curve"]["train_loss"]["value"] == [3.0, 2.0, 1.0]
    assert a["curve"]["spike_rate"]["value"] == pytest.approx([0.1, 0.2, 0.3])
    b = run_record(_run(tmp_path, "b", [0.6, 0.8]), label="ESG")
    table = compare_table([a, b])
    assert "| ESG | IM-Loss, Table 2 | 80.00 | 80.00 | 2 | 12.5 s |" in table
    a["differs"], b["differs"] = {"esg.enabled": "false"}, {"esg.enabled": "true"}
    lines = compare_table([a, b]).splitlines()
    assert lines[0].startswith("| run | esg.enabled | paper row")
    assert lines[3].startswith("| ESG | true | IM-Loss, Table 2 | 80.00 |")
    agg = repeat_summary([a, b])
    assert agg["best_acc"] == pm([75.0, 80.0]) and agg["runs"] == 2
    with pytest.raises(AnalysisError, match="neither summary.json nor metrics.csv"):
        run_record(tmp_path)


def test_find_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: r\n")
    with pytest.raises(AnalysisError, match="has no checkpoint.*stopped before its first epoch"):
        find_checkpoint(run)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    assert find_checkpoint(run, "best") == (run / "checkpoints" / "last.pt", run)   # falls back
    (run / "checkpoints" / "best.pt").write_bytes(b"x")
    assert find_checkpoint(run)[0].name == "best.pt" and find_checkpoint(run, "last")[0].name == "last.pt"
    assert find_checkpoint(run / "checkpoints" / "last.pt") == (run / "checkpoints" / "last.pt", run)
    with pytest.raises(AnalysisError, match="must be one of"):
        find_checkpoint(run, "first")


def test_compare_table_columns_without_paper_and_with_many_keys(tmp_path):
    a = run_record(_run(tmp_path, "a", [0.5]))
    a["paper"] = ""
    a["differs"] = {f"k{i}": str(i) for i in range(10)}
    lines = compare_table([a]).splitlines()
    assert lines[0] == "| run | " + " | ".join(f"k{i}" for i in range(8)) + \
        " | best acc (%) | final acc (%) | epochs | wall time |"
    assert lines[-1] == "2 more keys differ: k8, k9 (see compare.json)"
