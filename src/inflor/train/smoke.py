"""``inflor train --smoke``: build everything of a run (``build.build_run``, as ``Trainer.setup``
does) and take one step on a random batch of the dataset's shape; needs no dataset files."""
from __future__ import annotations

import time

import torch

from inflor.data import static_info
from inflor.errors import CheckpointError, ConfigError, NonFiniteLossError, RunError

from .build import build_run, check_data_config, check_model_name, resolve_device
from .callbacks import EsgSchedule
from .objective import compute_loss, first_nonfinite, format_losses
from .precision import autocast
from .stages import stage_configs

__all__ = ["smoke_test", "smoke_stages"]


def smoke_test(cfg: dict, batch_size: int = 2, image_size: int | None = None, device: str | None = None,
               out=print, init_state: dict | None = None) -> dict:
    """Build everything of a run (model, optimizer, schedule, loss) and do one forward + backward +
    step on a random batch of the dataset's shape. Needs no dataset files. Returns timings.

    The weights of ``train.init_from`` are loaded when that file exists, or ``init_state`` (a
    state dict) when given; a recipe with ``stages`` smoke-tests each stage from the weights the
    one before it left (``smoke_stages``)."""
    if cfg.get("stages"):
        return smoke_stages(cfg, batch_size=batch_size, image_size=image_size, device=device, out=out)
    t0 = time.perf_counter()
    check_model_name(cfg)
    check_data_config(cfg)
    dev = resolve_device(device or cfg["train"]["device"])
    info = static_info(cfg["data"]["name"], root=cfg["data"]["root"], **cfg["data"]["options"])
    if image_size is not None:   # models with a fixed-size flatten layer are built for this size
        c = info.input_shape[0]
        info = type(info)(name=info.name, num_classes=info.num_classes, input_shape=(c, image_size, image_size),
                          timesteps=info.timesteps)
    try:
        built = build_run(cfg, info, dev, init_state=init_state)
    except CheckpointError as e:   # a later stage that does not fit the previous one's weights: the recipe's fault
        raise (ConfigError if init_state is not None else RunError)(str(e)) from None
    model, opt = built.model.train(), built.optimizer
    lr = built.schedule.set_epoch(0)
    EsgSchedule(model, cfg["train"]["epochs"]).set_epoch(0)
    t_build = time.perf_counter() - t0
    shape = (batch_size, *info.input_shape) if info.timesteps is None else \
        (batch_size, info.timesteps, *info.input_shape)
    x = torch.randn(shape, device=dev) if info.timesteps is None else \
        (torch.rand(shape, device=dev) < 0.2).float()
    y = torch.randint(0, info.num_classes, (batch_size,), device=dev)
    t1 = time.perf_counter()
    try:
        with autocast(dev, cfg):
            logits = model(x)
        parts = compute_loss(model, logits, y, cfg)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
    except (ValueError, RuntimeError, TypeError) as e:
        raise RunError(f"smoke test of {cfg.get('name') or cfg['model']['name']!r} failed on a random batch "
                       f"{tuple(shape)}: {type(e).__name__}: {e}") from e
    bad = first_nonfinite(parts)
    if bad:
        raise NonFiniteLossError(f"smoke test: the {bad} loss is not finite ({float(parts[bad].detach())})")
    n_params = sum(p.numel() for p in model.parameters())
    res = {"name": cfg.get("name"), "model": cfg["model"]["name"], "params": n_params,
           "input_shape": list(shape), "logits_shape": list(logits.shape), "lr": lr,
           "loss": {k: float(v.detach()) for k, v in parts.items()}, "build_s": t_build, "forward_s": t2 - t1,
           "backward_s": t3 - t2, "step_s": t4 - t3, "device": str(dev), "model_state": model.state_dict()}
    if out is not None:
        out(f"smoke OK: {res['name'] or '-'}: {res['model']} ({n_params / 1e6:.2f} M params) on {dev}, "
            f"input {tuple(shape)} -> logits {tuple(logits.shape)}, {format_losses(res['loss'])}; "
            f"build {t_build:.2f}s, forward {t2 - t1:.2f}s, backward {t3 - t2:.2f}s, step {t4 - t3:.3f}s")
    return res


def smoke_stages(cfg: dict, batch_size: int = 2, image_size: int | None = None, device: str | None = None,
                 out=print) -> dict:
    """``--smoke`` of every stage in order, each from the weights the step of the one before left
    (so a stage whose model does not fit the previous one's weights fails here, before any data)."""
    results, state = {}, None
    for name, scfg in stage_configs(cfg):
        res = smoke_test(scfg, batch_size=batch_size, image_size=image_size, device=device, out=out,
                         init_state=state)
        state = res["model_state"]
        results[name] = res
    return {"name": cfg.get("name"), "stages": results, "loss": results[list(results)[-1]]["loss"],
            "model_state": state}
