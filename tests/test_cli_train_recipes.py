"""Every shipped recipe: it validates, its model builds with the recipe's exact options, and one
training step (forward + losses + backward + optimizer step) runs on a random batch of the
dataset's shape -- the ``inflor train -c NAME --smoke`` path, without dataset files.

To keep the suite fast on a CPU the step runs on a reduced copy of each recipe (T = 1, or 2 for
event data; batch 2; 16 px images, 32 px for VGG-16 whose five poolings need them; fixed-size
models built for that size) and only once per distinct setting (recipes that differ only in
paper metadata, seed, schedule, learning rate or T share one step). The model of every recipe is
also built with its exact options (on the meta device, so no memory is filled). The exact,
full-size smoke of any recipe is ``inflor train -c NAME --smoke``; one runs below through the
command line.
"""
import json
import os
import subprocess
import sys

import torch

from inflor.train.config import apply_overrides, list_recipes, load_config, validate_config
from inflor.train.trainer import check_data_config, check_model_name, make_model, smoke_test
from inflor.train.specs import static_dataset_info

RECIPES = list_recipes()


def test_there_is_a_recipe_per_paper_table():
    tables = {(load_config(n)["paper"]["name"] or "").split(" (")[0] + f" T{load_config(n)['paper']['table']}"
              for n in RECIPES if n != "default"}
    assert tables == {"InfLoR-SNN T1", "InfLoR-SNN T2", "InfLoR-SNN T4", "InfLoR-SNN T5", "RecDis-SNN T1",
                      "RecDis-SNN T4", "RecDis-SNN T5", "RecDis-SNN T6", "IM-Loss T1", "IM-Loss T2", "MPR T1"}


def _reduced(cfg):
    event = static_dataset_info(cfg["data"]["name"], cfg["data"]["options"]).timesteps is not None
    t = 2 if event else 1
    over = [("model.options.timesteps", t), ("train.device", "cpu"), ("train.amp", False)]
    if event:
        over.append(("data.options.timesteps", t))
    return validate_config(apply_overrides(cfg, over))


def _signature(cfg):
    c = json.loads(json.dumps(cfg))
    for sec, keys in (("paper", None), ("train", ["seed", "epochs"]), ("optim", ["lr"]), ("sched", None)):
        if keys is None:
            c.pop(sec, None)
        else:
            for k in keys:
                c[sec].pop(k, None)
    c.pop("name", None)
    c.pop("description", None)
    return json.dumps(c, sort_keys=True)


def test_every_recipe_builds_its_exact_model():
    for name in RECIPES:
        cfg = load_config(name)
        check_model_name(cfg)
        check_data_config(cfg)
        info = static_dataset_info(cfg["data"]["name"], cfg["data"]["options"])
        with torch.device("meta"):
            model = make_model(cfg, info)
        assert model.num_classes == info.num_classes, name


def test_every_recipe_runs_one_training_step(monkeypatch):
    # the reference neuron: compiling the fused kernels for every structure would dominate the time
    # (inflor's own tests cover the fused backend against the reference)
    monkeypatch.setattr("inflor.fused._ENABLED", False)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # tiny tensors: more threads only add overhead
    try:
        seen = _step_every_recipe()
    finally:
        torch.set_num_threads(threads)
    assert len(seen) >= 40


def _step_every_recipe():
    seen = {}
    for name in RECIPES:
        cfg = _reduced(load_config(name))
        sig = _signature(cfg)
        if sig in seen:
            continue
        size = 32 if cfg["model"]["name"].startswith("vgg16") else 16
        res = smoke_test(cfg, batch_size=2, image_size=size, out=None)
        assert all(v == v for v in res["loss"].values()), name
        seen[sig] = name
    return seen


def test_cli_smoke_of_a_full_size_recipe():
    name = "mpr_tab1_c100_resnet20_t2_k5"
    env = {**os.environ, "CI": "true"}
    p = subprocess.run([sys.executable, "-m", "inflor", "train", "-c", name, "--smoke", "train.device=cpu"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"smoke OK: {name}:") and "forward" in p.stdout
