"""Distributed data parallel through ``torchrun``, nothing home-made.

``torchrun --nproc_per_node N -m inflor train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and ``MASTER_ADDR``/``MASTER_PORT``; ``init_distributed`` reads them and starts a process group
(NCCL when the run uses CUDA, gloo otherwise). Without those variables everything here is a
no-op for a single process. Only rank 0 writes files; metrics are summed over ranks.

Batch sizes in a config are global, as the papers state them: ``per_process_batch`` divides
``data.batch_size`` among the processes, so a recipe trains with the paper's batch, for which its
learning rate was chosen, on 1 GPU or 8.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from inflor.errors import ConfigError, InflorError

__all__ = ["bare_model", "DistInfo", "init_distributed", "cleanup", "all_reduce_sum", "broadcast_object", "barrier",
           "per_process_batch", "peer_failure"]

#: words of the errors gloo / NCCL raise when another process of the group died or hung
_PEER_LOST = ("gloo", "NCCL", "Connection reset by peer", "Connection closed by peer", "Broken pipe", "timed out",
              "Timed out")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_process_batch(global_batch: int, world_size: int, exact: bool = True,
                      key: str = "data.batch_size") -> int:
    """The batch each of ``world_size`` processes loads so that together they load the global
    batch ``global_batch``. ``exact`` (training, where the batch sets the optimisation): it must
    divide, else ``ConfigError``; otherwise (evaluation, whose results do not depend on the
    batch) it is rounded up."""
    if global_batch % world_size == 0:
        return global_batch // world_size
    if not exact:
        return -(-global_batch // world_size)
    lo, hi = global_batch // world_size * world_size, -(-global_batch // world_size) * world_size
    raise ConfigError(f"{key}={global_batch} is the global batch and does not divide among {world_size} "
                      f"processes; use a multiple of {world_size} (e.g. {lo or world_size} or {hi}) or "
                      f"another number of processes")


def init_distributed(device_kind: str) -> DistInfo:
    """Start the process group if launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def cleanup(barrier: bool = False) -> None:
    """Tear the process group down. After a run that ended normally on every rank
    (``barrier=True``), first wait for all ranks: a rank that destroys the group while another is
    still finishing its last collective can make gloo abort at exit ("terminate called without an
    active exception", seen once in the two-process test). After an error, no wait: the other
    ranks may be gone."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def peer_failure(e: BaseException, info: DistInfo) -> str | None:
    """What a failed collective says, in one line, if ``e`` is one (another process of the run
    died, hung or lost its connection); ``None`` for anything else or outside a distributed run."""
    if not info.enabled or not isinstance(e, RuntimeError) or isinstance(e, InflorError):
        return None
    text = str(e)
    if not (isinstance(e, getattr(dist, "DistError", ())) or any(w in text for w in _PEER_LOST)):
        return None
    first = (text.strip().splitlines() or [type(e).__name__])[0]
    first = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", first)    # "[.../pair.cc:545] " source location
    return first.split(". ")[0].rstrip(".")[:300]


def bare_model(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
