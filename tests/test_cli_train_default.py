"""The promise of the README: ``inflor train`` with no recipe trains tinyconv on the bundled digits
to >= 95 % test accuracy in well under 3 minutes on 2 CPU cores (about 30 s measured, start-up
included). This runs exactly that command."""
import json
import os
import subprocess
import sys
import time


def test_default_run_reaches_95_percent_quickly(tmp_path):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "inflor", "train", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, env={**os.environ, "CI": "true"}, timeout=600)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["model"] == "tinyconv" and s["dataset"] == "digits" and s["status"] == "completed"
    assert s["final_test_acc"] >= 0.95 and s["best_test_acc"] >= 0.95, s
    assert wall < 180, f"the default run took {wall:.0f} s"
