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
import json
from pathlib import Path
from typing import Callable, Iterable

from ..atomic import atomic_write
from inflor.config.validate import stage_configs  # noqa: F401  (re-exported: it was defined here)

from .config import dump_config

__all__ = ["stage_configs", "run_stages", "smoke_stages", "stage_progress", "final_run_dir", "has_checkpoint"]


def _read_summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def stage_progress(run_dir: Path, cfg: dict) -> str:
    """``completed``, ``partial`` (a checkpoint to resume from) or ``new``."""
    s = _read_summary(run_dir)
    if s.get("status") == "completed" and s.get("epochs_done") == cfg["train"]["epochs"]:
        return "completed"
    return "partial" if (run_dir / "checkpoints" / "last.pt").is_file() else "new"


def final_run_dir(path: str | Path) -> Path:
    """The run directory holding a run's final weights: ``path`` itself, or for a run made of
    stages its last stage's directory."""
    p = Path(path)
    main = _read_summary(p).get("main_stage")
    return p / main if main else p


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds something to resume (a checkpoint, in itself or in a stage)."""
    p = Path(run_dir)
    if (p / "checkpoints" / "last.pt").is_file():
        return True
    return any((d / "checkpoints" / "last.pt").is_file() for d in p.iterdir() if d.is_dir()) if p.is_dir() else False


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


def run_stages(cfg: dict, out_dir, resume: bool = False, callbacks: Iterable[Callable] = (),
               log: Callable[[str], None] | None = None) -> dict:
    """Run every stage of ``cfg`` into ``out_dir/<stage>`` (see the module docstring)."""
    from .distributed import cleanup, init_distributed
    from .trainer import RunError, Trainer, resolve_device

    log = log or (lambda s: print(s, flush=True))
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
            text = json.dumps(summary, indent=2).encode()
            atomic_write(out / "summary.json", lambda f: f.write(text))
        return summary

    try:
        if main_rank:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(dump_config(_one_shot_stops_removed(cfg)))
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
            tr = Trainer(scfg, where, resume=progress[name] == "partial", callbacks=callbacks, log=log)
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


def smoke_stages(cfg: dict, batch_size: int = 2, image_size: int | None = None, device: str | None = None,
                 out=print) -> dict:
    """``--smoke`` of every stage in order, each from the weights the step of the one before left
    (so a stage whose model does not fit the previous one's weights fails here, before any data)."""
    from .trainer import smoke_test

    results, state = {}, None
    for name, scfg in stage_configs(cfg):
        res = smoke_test(scfg, batch_size=batch_size, image_size=image_size, device=device, out=out,
                         init_state=state)
        state = res["model_state"]
        results[name] = res
    return {"name": cfg.get("name"), "stages": results, "loss": results[list(results)[-1]]["loss"],
            "model_state": state}
