"""Distributed data parallel through torchrun: ``data.batch_size`` is the global batch, so 2 CPU
processes (gloo) with ``data.batch_size=64`` load 32 each and train to the same parameters as 1
process with ``data.batch_size=64``.

Why equality holds: the sampler is a DistributedSampler seeded by (train.seed, epoch) in both
cases, so at step k rank r gets samples perm[r::2][kB:(k+1)B] (B = 32), whose union over the two
ranks is exactly perm[2kB:2(k+1)B], the single process's batch k of 64; had each process loaded
64, the union would be 128 samples and the parameters would differ; DDP averages the two ranks' gradients,
which equals the gradient of the mean loss over the union. Two things would break it and are
switched off here: batch statistics (BN / tdBN normalise over each rank's own batch, and MPD-Loss
/ IM-Loss use each rank's own membrane statistics), hence ``norm: none`` and no distribution
loss; and per-rank randomness (augmentation, dropout), absent from tinyconv on digits.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from inflor.train.checkpoint import load_checkpoint
from inflor.train.config import ConfigError, load_config
from inflor.train.distributed import per_process_batch
from inflor.train.trainer import run_training

COMMON = ["model.options={timesteps: 2, width: 4, neuron: srif, norm: none}", "train.epochs=2",
          "train.max_steps_per_epoch=3", "train.tensorboard=false", "train.device=cpu", "optim.lr=0.05"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_share_the_global_batch_and_equal_one_process(tmp_path):
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "inflor", "train", "--out", str(tmp_path / "ddp"), "data.batch_size=64", *COMMON]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("epoch 1/2") == 1          # only rank 0 reports
    assert "global batch 64 = 2 processes × 32" in p.stdout
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"

    single = run_training(load_config(None, ["data.batch_size=64", "train.progress=none", *COMMON]),
                          tmp_path / "one", log=lambda s: None)
    a = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    for k, v in b["model_state"].items():
        assert torch.allclose(a["model_state"][k], v, atol=1e-5, rtol=1e-4), k
    ma, mb = a["metrics"], b["metrics"]
    for ra, rb in zip(ma, mb):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "spike_rate"):
            assert abs(ra[key] - rb[key]) < 1e-4, (key, ra[key], rb[key])
    # the test set was split over the ranks and the counts summed: every sample once
    assert summary["final_test_acc"] == single["final_test_acc"]


def test_a_global_batch_that_does_not_divide_is_refused():
    # the same check every process makes in Trainer.setup before reading any data
    assert per_process_batch(64, 2) == 32 and per_process_batch(64, 1) == 64
    assert per_process_batch(100, 3, exact=False) == 34          # evaluation: rounded up
    with pytest.raises(ConfigError, match=r"data.batch_size=65 is the global batch and does not divide "
                                          r"among 2 processes; use a multiple of 2 \(e.g. 64 or 66\)"):
        per_process_batch(65, 2)
