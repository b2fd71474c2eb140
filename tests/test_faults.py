"""Faults during a run, each tried: a checkpoint write that fails midway (a full disk), SIGINT and
SIGTERM, kill -9 at random points over several runs, and a DDP process that dies. After each, the
checkpoints are intact and loadable, the run says what happened, and ``--resume`` ends with
exactly the weights and metrics of an uninterrupted run.

Tiny runs: tinyconv of width 4, T = 2, on the bundled digits, 4 steps an epoch, the reference
neuron (no kernel compilation in the child processes). The cosine period is fixed
(``sched.epochs``) so that a run may be resumed with a different ``train.epochs`` and still be
compared with an uninterrupted run of that many epochs.
"""
from __future__ import annotations

import errno
import io
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from inflor.cli import main
from inflor.runs import checkpoint as ckpt_mod
from inflor.train.checkpoint import load_checkpoint
from inflor.train.config import load_config
from inflor.train.trainer import run_training

MODEL = "model.options={timesteps: 2, width: 4, neuron: srif, norm: tdbn, neuron_options: {backend: reference}}"
RUN = [MODEL, "train.max_steps_per_epoch=4", "train.tensorboard=false", "sched.epochs=20", "train.device=cpu",
       "data.batch_size=64"]
QUIET = ["train.progress=none"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is several times faster on a busy machine, and the child processes
    (OMP_NUM_THREADS=1) compute bit for bit what this process computes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def reference(folder: Path, epochs: int, extra=()) -> dict:
    """last.pt of an uninterrupted in-process run of ``epochs`` epochs."""
    run_training(load_config(None, [*RUN, *QUIET, *extra, f"train.epochs={epochs}"]), folder, log=lambda s: None)
    return load_checkpoint(folder / "checkpoints" / "last.pt")


def assert_same_run(a: dict, b: dict) -> None:
    """Bit-exact: the same weights, optimizer state and metrics (but the timings)."""
    assert a["epoch"] == b["epoch"]
    assert a["model_state"].keys() == b["model_state"].keys()
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    assert (a["best_acc"], a["best_epoch"]) == (b["best_acc"], b["best_epoch"])
    strip = [{k: v for k, v in row.items() if k != "epoch_time"} for row in a["metrics"]]
    assert strip == [{k: v for k, v in row.items() if k != "epoch_time"} for row in b["metrics"]]


def assert_consistent_stop(out: Path, status: str) -> int:
    """summary.json has ``status``; last.pt, summary and metrics.csv agree on the epochs done."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status, summary
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    rows = (out / "metrics.csv").read_text().strip().splitlines()[1:]
    assert summary["epochs_done"] == last["epoch"] == len(rows) >= 1
    assert not list((out / "checkpoints").glob(".*.tmp")), "a temporary checkpoint file was left behind"
    return last["epoch"]


# --------------------------------------------------------------------------- the disk fills up
@pytest.mark.parametrize("target", ["last.pt", "best.pt"])
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoints(target, tmp_path, monkeypatch, capsys):
    """The second write of ``target`` writes half its bytes and then fails with ENOSPC, inside the
    real atomic writer: the previous file stays as it was, the run stops and says so, exit 1."""
    real = ckpt_mod.atomic_write
    writes, kept = {}, {}

    def disk_fills_up(path, write, fsync=True):
        path = Path(path)
        writes[path.name] = writes.get(path.name, 0) + 1
        if path.name != target or writes[path.name] != 2:
            return real(path, write, fsync)
        kept["bytes"] = path.read_bytes()

        def half_then_full(f):
            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, half_then_full, fsync)

    monkeypatch.setattr(ckpt_mod, "atomic_write", disk_fills_up)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "out", *RUN, *QUIET, "train.epochs=3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"inflor train: error: cannot write checkpoint out/checkpoints/{target} (No space left "
                          f"on device); the previous {target}, if any, is unchanged; the run stopped in epoch 2"), err
    assert "continue with: inflor train --out out --resume" in err
    # the file that failed is byte for byte what it was, and loadable; nothing half-written remains
    ck = Path("out/checkpoints")
    assert (ck / target).read_bytes() == kept["bytes"]
    last, best = load_checkpoint(ck / "last.pt"), load_checkpoint(ck / "best.pt")
    assert last["epoch"] == 1 and best["epoch"] in (1, 2)
    assert not list(ck.glob(".*.tmp"))
    summary = json.loads(Path("out/summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    # once there is space again, --resume ends exactly where an uninterrupted run ends
    monkeypatch.setattr(ckpt_mod, "atomic_write", real)
    assert main(["train", "--out", "out", "--resume"]) == 0
    assert_same_run(load_checkpoint(ck / "last.pt"), reference(tmp_path / "ref", 3))
    assert load_checkpoint(ck / "best.pt")["epoch"] == load_checkpoint(ck / "last.pt")["best_epoch"]


# --------------------------------------------------------------------------- SIGINT, in this process
def test_sigint_mid_epoch_saves_the_last_finished_epoch(tmp_path):
    """Ctrl-C at a random moment of epoch 2 or later. Checkpoints are due only every 100 epochs
    and the test split only at the end, so last.pt exists only because the interrupt wrote the
    last finished epoch. Resuming gives the uninterrupted run's numbers."""
    delay = random.Random().uniform(0.0, 0.4)
    timer = []

    def ctrl_c_soon(trainer, epoch, row):
        if epoch == 0:     # armed in epoch 1's callback: the signal lands while fit() is running
            timer.append(threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)))
            timer[0].start()

    extra = ["train.save_every=100", "train.eval_every=100"]
    out = tmp_path / "run"
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            run_training(load_config(None, [*RUN, *QUIET, *extra, "train.epochs=40"]), out, callbacks=[ctrl_c_soon],
                         log=lambda s: None)
    finally:
        for t in timer:
            t.cancel()
    assert getattr(info.value, "signum", None) == signal.SIGINT
    done = assert_consistent_stop(out, "interrupted")
    run_training(load_config(None, [*RUN, *QUIET, *extra, f"train.epochs={done + 1}"]), out, resume=True,
                 log=lambda s: None)
    assert_same_run(load_checkpoint(out / "checkpoints" / "last.pt"), reference(tmp_path / "ref", done + 1, extra))


# --------------------------------------------------------------------------- real processes
class Child:
    """A process whose stdout lines are read in a thread, so that waiting for a line has a timeout."""

    def __init__(self, argv, cwd, **kwargs):
        env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}   # as one_thread() in this process
        env.pop("INFLOR_DEBUG", None)
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, **kwargs)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float = 180) -> bool:
        """True once a line starting with ``prefix`` came; False if the process ended first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                return False
            self.seen.append(line)
            if line.startswith(prefix):
                return True
        raise AssertionError(f"no line {prefix!r} within {timeout}s; got {''.join(self.seen)[-2000:]}")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        rest = []
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            rest.append(line)
        self.seen += rest
        return rc, "".join(self.seen), self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def train_child(tmp_path, *args) -> Child:
    return Child([sys.executable, "-m", "inflor", "train", "--out", "run", *args], cwd=tmp_path)


@pytest.mark.slow
def test_sigterm_mid_epoch_ends_the_run_cleanly(tmp_path):
    """SIGTERM (what a scheduler or torchrun sends) at a random moment after epoch 1: exit status
    143, one line on stderr, summary.json 'interrupted', last.pt = the last finished epoch, and a
    resume that computes what an uninterrupted run computes."""
    child = train_child(tmp_path, *RUN, "train.epochs=40")
    try:
        assert child.wait_for("epoch 1/40")
        time.sleep(random.Random().uniform(0.0, 0.5))
        child.proc.send_signal(signal.SIGTERM)
        rc, out, err = child.finish()
    finally:
        child.kill()
    assert rc == 128 + signal.SIGTERM, (rc, out, err)
    assert err == "inflor train: interrupted (SIGTERM)\n", err
    assert "continue with: inflor train --out run --resume" in out
    run = tmp_path / "run"
    done = assert_consistent_stop(run, "interrupted")
    run_training(load_config(None, [*RUN, *QUIET, f"train.epochs={done + 1}"]), run, resume=True, log=lambda s: None)
    assert_same_run(load_checkpoint(run / "checkpoints" / "last.pt"), reference(tmp_path / "ref", done + 1))


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume(tmp_path):
    """kill -9 at a random moment of epoch 1 (before any checkpoint), then at a random moment from
    the end of epoch 2 on (its checkpoint is written just after the line, so this may hit the
    write); each time the next process resumes (or, with no checkpoint yet, starts again), and the
    last one ends with the weights and metrics of an uninterrupted run."""
    epochs = 6
    rng = random.Random()
    kills = [("run ", rng.uniform(0.0, 0.15)), ("epoch 2/", rng.uniform(0.0, 0.6))]
    run = tmp_path / "run"
    history = []
    for anchor, delay in [*kills, (None, 0)]:
        resume = (run / "checkpoints" / "last.pt").is_file()
        history.append(f"resume={resume} kill after {anchor!r} + {delay:.2f}s")
        child = train_child(tmp_path, *RUN, f"train.epochs={epochs}", *(["--resume"] if resume else []))
        try:
            if anchor is None:
                rc, out, err = child.finish(timeout=300)
                assert rc == 0, (history, out, err)
                break
            if child.wait_for(anchor):
                time.sleep(delay)
            child.kill()                               # SIGKILL: nothing runs after it
        finally:
            child.kill()
        if (run / "checkpoints" / "last.pt").is_file():
            load_checkpoint(run / "checkpoints" / "last.pt")     # whatever the moment, last.pt is whole
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert_same_run(load_checkpoint(run / "checkpoints" / "last.pt"), reference(tmp_path / "ref", epochs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_pid(launcher_pid: int, rank: int, timeout: float = 60) -> int:
    """The pid of torchrun's worker of ``rank`` (from /proc: its children and their RANK)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for task in Path(f"/proc/{launcher_pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if f"RANK={rank}".encode() in env:
                    return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no worker of rank {rank} under pid {launcher_pid}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker pids in /proc")
def test_ddp_one_rank_dies_the_other_stops_with_a_message(tmp_path):
    """torchrun, 2 CPU processes (gloo): rank 1 is killed with SIGKILL after epoch 1. Rank 0 (the
    one that writes files) must stop within a bounded time, say why (its collective failed, or
    torchrun's SIGTERM came first), keep its checkpoints whole, and the run must resume."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            "-m", "inflor", "train", "--out", "run", *RUN, "data.batch_size=32", "train.epochs=40"]
    child = Child(argv, cwd=tmp_path)
    try:
        assert child.wait_for("epoch 1/40")
        time.sleep(random.Random().uniform(0.0, 0.3))
        os.kill(_rank_pid(child.proc.pid, 1), signal.SIGKILL)
        t0 = time.monotonic()
        rc, out, err = child.finish(timeout=90)
        took = time.monotonic() - t0
    finally:
        child.kill()
    assert rc != 0 and took < 60, (rc, took)
    said = [ln for ln in err.splitlines() if ln.startswith("inflor train: ")]
    assert said and ("another process of the distributed run stopped or lost its connection" in said[0]
                     or said[0] == "inflor train: interrupted (SIGTERM)"), err[-3000:]
    assert not [ln for ln in err.splitlines() if "inflor/" in ln and ln.lstrip().startswith("File ")], \
        "a traceback from inflor: " + err[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] in ("failed", "interrupted") and summary["world_size"] == 2
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] >= 1 and load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] >= 1
    assert not list((run / "checkpoints").glob(".*.tmp"))
    # the checkpoints are whole: one process continues the run
    s = run_training(load_config(None, [*RUN, *QUIET, "data.batch_size=32", f"train.epochs={last['epoch'] + 1}"]),
                     run, resume=True, log=lambda s: None)
    assert s["status"] == "completed" and s["epochs_done"] == last["epoch"] + 1
