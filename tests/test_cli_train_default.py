"""The promise of the README: ``inflor train`` with no recipe trains tinyconv on the bundled digits
to >= 95 % test accuracy (about 30 s on 2 CPU cores, start-up included; speed is measured by the
benchmarks, not asserted here). This runs exactly that command, and the same with mixed precision
(``train.amp=true``: bfloat16 autocast on the CPU), which must end within one point of it."""
import json
import os
import subprocess
import sys

import pytest


def _train(out, *overrides) -> dict:
    p = subprocess.run([sys.executable, "-m", "inflor", "train", "--out", str(out), *overrides],
                       capture_output=True, text=True, env={**os.environ, "CI": "true"}, timeout=900)
    assert p.returncode == 0, p.stderr
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_default_run_reaches_95_percent_and_amp_is_within_one_point(tmp_path):
    s = _train(tmp_path / "run")
    assert s["model"] == "tinyconv" and s["dataset"] == "digits" and s["status"] == "completed"
    assert s["final_test_acc"] >= 0.95 and s["best_test_acc"] >= 0.95, s
    amp = _train(tmp_path / "amp", "train.amp=true")
    assert amp["config"]["train"]["amp"] is True and amp["status"] == "completed"
    assert abs(amp["final_test_acc"] - s["final_test_acc"]) <= 0.01, (amp["final_test_acc"], s["final_test_acc"])
