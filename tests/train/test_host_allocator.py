"""``train.host_allocator`` (inflor.train.host_allocator, docs/design.md §9.1): what each setting
means on each device, that ``heap`` really makes glibc reuse a freed block instead of faulting in
fresh pages, that a run says which is in effect, and that the setting changes no result."""
import json
import os
import subprocess
import sys

import pytest
import torch

from inflor.config import ConfigError, load_config
from inflor.train import host_allocator as ha

GLIBC = ha._glibc() is not None

# A 40 MiB tensor is above glibc's largest dynamic mmap threshold (32 MiB): by default it is its
# own mapping, unmapped when freed, so allocating it again faults in every page again. Minor page
# faults of each of 32 allocate-fill-free cycles, in a fresh process, with and without
# ``keep_freed_memory``. (Under ``heap`` the first cycles still fault: PyTorch's 64-byte aligned
# request does not fit the block just freed until freed blocks have coalesced into a large enough
# one; from then on every cycle reuses resident pages. With glibc 2.36 that took 9 cycles.)
FAULTS = r"""
import json, resource, sys, torch
from inflor.train.host_allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "heap" else None
faults = []
for _ in range(32):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(10 * 2 ** 20, dtype=torch.float32)
    x.fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del x
print(json.dumps({"applied": applied, "faults": faults}))
"""
PAGES = 40 * 2 ** 20 // os.sysconf("SC_PAGE_SIZE")


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


def _faults(mode: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # glibc's own behaviour: no settings from the environment, no preloaded allocator
    for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD",
              "THP_MEM_ALLOC_ENABLE"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_choices_are_the_config_schemas():
    assert ha.HOST_ALLOCATORS == ("auto", "heap", "system")
    assert load_config(overrides=["train.host_allocator=HEAP"])["train"]["host_allocator"] == "heap"
    with pytest.raises(ConfigError, match="auto.*heap.*system"):
        load_config(overrides=["train.host_allocator=jemalloc"])


@pytest.mark.parametrize("setting,device,expected", [
    ("auto", "cpu", "heap"), ("auto", "cuda", "system"), ("auto", "cuda:1", "system"),
    ("heap", "cuda", "heap"), ("system", "cpu", "system"), ("heap", "cpu", "heap")])
def test_auto_is_heap_on_the_cpu_only(setting, device, expected):
    assert ha.resolve_host_allocator(setting, torch.device(device)) == expected


def test_an_unknown_setting_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid choices: auto, heap, system"):
        ha.resolve_host_allocator("tcmalloc", "cpu")


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt is what heap sets")
def test_heap_reuses_freed_blocks_instead_of_faulting_in_fresh_pages():
    heap = _faults("heap")
    # 1 GiB, or 32 MiB on glibc < 2.35: the 40 MiB tensor is a fresh mapping each time there
    if heap["applied"] == ha.OLD_GLIBC_MMAP_THRESHOLD:
        pytest.skip("glibc < 2.35: the mmap threshold stops at 32 MiB, below this tensor")
    assert heap["applied"] == ha.MMAP_THRESHOLD, heap
    assert max(heap["faults"][-4:]) < PAGES // 20, heap   # resident pages serve every cycle


@pytest.mark.skipif(not GLIBC or _thp_always(), reason="glibc's default mmap threshold, 4 KiB pages")
def test_by_default_every_cycle_faults_again():
    system = _faults("system")
    assert system["applied"] is None
    assert min(system["faults"][-4:]) > PAGES // 2, system   # a fresh mapping every time


class FakeLibc:
    """glibc's ``mallopt`` as far as these tests need it: accepts an mmap threshold up to
    ``max_mmap`` (older glibc: 32 MiB) and records what was set."""

    def __init__(self, max_mmap):
        self.max_mmap, self.calls = max_mmap, []

    def mallopt(self, param, value):
        self.calls.append((param.value, value.value))
        return int(param.value != ha._M_MMAP_THRESHOLD or value.value <= self.max_mmap)


@pytest.fixture
def fresh(monkeypatch):
    """The module as in a process where no run has set heap yet."""
    monkeypatch.setattr(ha, "_applied", None)


def test_without_glibc_auto_falls_back_quietly_and_heap_says_so(monkeypatch, fresh):
    monkeypatch.setattr(ha, "_glibc", lambda: None)
    said = []
    assert ha.keep_freed_memory() is None
    assert ha.use_host_allocator("auto", "cpu", warn=said.append) == "system"
    assert said == []
    assert ha.use_host_allocator("heap", "cpu", warn=said.append) == "system"
    assert len(said) == 1 and "missing here or refused" in said[0]
    assert ha.use_host_allocator("system", "cpu", warn=said.append) == "system"


def test_old_glibc_gets_the_largest_threshold_it_accepts(monkeypatch, fresh):
    libc = FakeLibc(max_mmap=32 * 2 ** 20)
    monkeypatch.setattr(ha, "_glibc", lambda: libc)
    assert ha.keep_freed_memory() == ha.OLD_GLIBC_MMAP_THRESHOLD == 32 * 2 ** 20
    assert libc.calls == [(ha._M_MMAP_THRESHOLD, ha.MMAP_THRESHOLD), (ha._M_MMAP_THRESHOLD, 32 * 2 ** 20),
                          (ha._M_TRIM_THRESHOLD, ha.TRIM_THRESHOLD)]
    libc = FakeLibc(max_mmap=2 ** 31)
    monkeypatch.setattr(ha, "_glibc", lambda: libc)
    assert ha.keep_freed_memory() == ha.MMAP_THRESHOLD
    assert libc.calls == [(ha._M_MMAP_THRESHOLD, ha.MMAP_THRESHOLD), (ha._M_TRIM_THRESHOLD, ha.TRIM_THRESHOLD)]


def test_a_refused_threshold_changes_nothing(monkeypatch, fresh):
    libc = FakeLibc(max_mmap=0)
    monkeypatch.setattr(ha, "_glibc", lambda: libc)
    assert ha.keep_freed_memory() is None
    assert all(param == ha._M_MMAP_THRESHOLD for param, _ in libc.calls)   # the trim threshold untouched


def test_system_after_heap_in_the_same_process_says_heap(monkeypatch, fresh):
    monkeypatch.setattr(ha, "_glibc", lambda: FakeLibc(max_mmap=2 ** 31))
    said = []
    assert ha.use_host_allocator("system", "cpu", warn=said.append) == "system" and said == []
    assert ha.use_host_allocator("auto", "cpu", warn=said.append) == "heap"
    assert ha.use_host_allocator("auto", "cuda", warn=said.append) == "heap"
    assert len(said) == 1 and "cannot undo" in said[0]


def test_the_run_says_which_allocator_is_in_effect(tmp_path, monkeypatch):
    from inflor.train.trainer import Trainer
    seen = []
    monkeypatch.setattr("inflor.train.trainer.use_host_allocator",
                        lambda setting, device, warn: seen.append((setting, str(device))) or "system")
    cfg = load_config(overrides=["train.epochs=1", "train.max_steps_per_epoch=1", "train.tensorboard=false",
                                 "train.device=cpu", "train.host_allocator=system", "train.progress=none"])
    lines = []
    tr = Trainer(cfg, tmp_path / "run", log=lines.append)
    tr.setup()
    tr.fit()
    assert seen == [("system", "cpu")]
    assert any(line.endswith("device cpu (host allocator system)") for line in lines), lines
