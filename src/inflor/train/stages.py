"""Recipes of several trainings in a row (``stages``): the papers' warm-start protocols.

IM-Loss (Sec. 5.1) starts every Table 1 model from "the models trained by IM-Loss after several
iterations", RecDis (Sec. 4.1) its "None" rows from a model trained briefly with MPD-Loss. A
recipe states such a protocol as an ordered mapping::

    stages:
      warmup: {loss: {im: {weight: 2.0}}, train: {epochs: 1, max_steps_per_epoch: 100}}
      main: {}

Each stage is the recipe with the stage's settings merged over it (``inflor.config.merge``),
run as an ordinary run into ``OUT/<stage>``; every stage after the first starts from the previous
stage's final weights (``train.init_from = OUT/<previous>/checkpoints/last.pt``: weights only,
``inflor.train.warmstart``). Command-line overrides change the recipe, so every stage that does
not set that key itself; ``stages.NAME.KEY=VALUE`` changes one stage.

``OUT`` holds ``config.yaml`` (the recipe with its stages) and ``summary.json``: the last
(main) stage's results, with ``stages`` (each stage's directory, status and accuracies) and
``wall_time`` summed over the stages. ``--resume`` skips completed stages, resumes the one that
was interrupted (exactly, from its ``last.pt``) and runs the rest.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Iterable

from ..runs.config_file import write_config_text
from ..runs.layout import RunDir
from ..runs.summary import final_run_dir, has_checkpoint  # noqa: F401  (re-exported)
from ..runs.summary import read_summary_or_empty as _read_summary
from ..runs.summary import write_summary as _write_summary
from ..config.validate import stage_configs  # noqa: F401  (re-exported: it was defined here)
from ..errors import RunError
from ..logs import progress as log_progress
from .build import resolve_device
from .config import dump_config
from .distributed import cleanup, init_distributed

__all__ = ["stage_configs", "run_stages", "stage_progress", "final_run_dir", "has_checkpoint"]


def stage_progress(run_dir: Path, cfg: dict) -> str:
    """``completed``, ``partial`` (a checkpoint to resume from) or ``new``."""
    s = _read_summary(run_dir)
    if s.get("status") == "completed" and s.get("epochs_done") == cfg["train"]["epochs"]:
        return "completed"
    return "partial" if RunDir(run_dir).last.is_file() else "new"


def _one_shot_stops_removed(cfg: dict) -> dict:
    """The config as saved in OUT/config.yaml: a stage's ``train.stop_after_epochs`` is a one-shot
    stop (like the recipe's own, which ``--resume`` clears), so it is not saved."""
    c = copy.deepcopy(cfg)
    for over in (c.get("stages") or {}).values():
        if over and isinstance(over.get("train"), dict):
            over["train"].pop("stop_after_epochs", None)
            if not over["train"]:
                del over["train"]
    return c


_STAGE_KEYS = ("status", "best_test_acc", "best_epoch", "final_test_acc", "epochs_done", "epochs", "wall_time")


def _summary(cfg: dict, out: Path, stages: list, results: dict) -> dict:
    """OUT/summary.json: the main (last) stage's results and one entry per stage."""
    names = [n for n, _ in stages]
    main = results.get(names[-1]) or {}
    entries = []
    for name in names:
        r = results.get(name)
        entries.append({"name": name, "run_dir": str(out / name),
                        **({k: r.get(k) for k in _STAGE_KEYS} if r else {"status": "not started"})})
    status = next((e["status"] for e in entries if e["status"] != "completed"), "completed")
    if status == "not started":
        status = "stopped"
    summary = {**main, "name": cfg.get("name"), "status": status, "main_stage": names[-1], "stages": entries,
               "wall_time": sum(e.get("wall_time") or 0.0 for e in entries),
               "paper": cfg.get("paper"), "reported_acc": (cfg.get("paper") or {}).get("reported_acc"),
               "config": cfg}
    summary.pop("error", None)
    return summary


def run_stages(cfg: dict, out_dir, make_trainer: Callable, resume: bool = False, callbacks: Iterable[Callable] = (),
               log: Callable[[str], None] | None = None) -> dict:
    """Run every stage of ``cfg`` into ``out_dir/<stage>`` (see the module docstring), each with
    ``make_trainer(cfg, run_dir, resume=, callbacks=, log=)`` (``inflor.train.Trainer``)."""

    log = log or log_progress
    out = Path(out_dir)
    stages = stage_configs(cfg, out)
    progress = {name: stage_progress(out / name, scfg) for name, scfg in stages}
    if not resume and any(p != "new" for p in progress.values()):
        raise RunError(f"{out} already holds a run (stages {', '.join(n for n, p in progress.items() if p != 'new')}"
                       f"); pass --resume to continue it or choose another --out")
    if resume and all(p == "new" for p in progress.values()):
        raise RunError(f"nothing to resume in {out}: no stage finished an epoch; start it again without --resume")
    main_rank = init_distributed(resolve_device(cfg["train"]["device"]).type).is_main
    results: dict = {}
    finished = False

    def write_summary() -> dict:
        summary = _summary(cfg, out, stages, results)
        if main_rank:
            _write_summary(out, summary)
        return summary

    try:
        if main_rank:
            out.mkdir(parents=True, exist_ok=True)
            write_config_text(out, dump_config(_one_shot_stops_removed(cfg)))
        for i, (name, scfg) in enumerate(stages):
            where = out / name
            tag = f"stage {i + 1}/{len(stages)} {name!r}"
            if progress[name] == "completed":
                results[name] = _read_summary(where)
                if main_rank:
                    log(f"{tag}: completed earlier in {where}")
                continue
            if main_rank:
                log(f"{tag} -> {where}" + (" (resuming)" if progress[name] == "partial" else "")
                    + (f", from the weights of stage {stages[i - 1][0]!r}" if i else ""))
            tr = make_trainer(scfg, where, resume=progress[name] == "partial", callbacks=callbacks, log=log)
            tr.setup()
            try:
                results[name] = tr.fit()
            except RunError:
                results[name] = _read_summary(where) or {"status": "failed"}
                write_summary()
                raise
            if results[name].get("status") != "completed":
                break
        summary = write_summary()
        finished = True
    finally:
        cleanup(barrier=finished)
    if summary["status"] == "completed":
        log(f"done: {len(stages)} stages; main stage {stages[-1][0]!r}: best test acc "
            f"{summary.get('best_test_acc'):.4f}, final {summary.get('final_test_acc'):.4f}; outputs in {out}")
    else:
        log(f"stopped in stage {next(e['name'] for e in summary['stages'] if e['status'] != 'completed')!r}; "
            f"continue with --resume --out {out}")
    return summary
