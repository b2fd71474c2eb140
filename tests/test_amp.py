"""Mixed precision (``train.amp=true``) on the CPU, where autocast runs bfloat16.

* The three shipped recipes that set ``train.amp: true`` (the ImageNet ones) get finite losses
  from a smoke step, with their distribution loss on (its statistics stay float32).
* (The default recipe trained with AMP ending within one point of the float32 run is checked in
  ``test_cli_train_default.py``, beside the float32 run it compares with.)
"""
import pytest

from inflor.train.config import apply_overrides, load_config, validate_config
from inflor.train.trainer import smoke_test

AMP_RECIPES = ["imloss_tab2_imagenet_resnet34_t6", "imloss_tab2_imagenet_vgg16_t5", "recdis_tab5_imagenet_resnet34_t6"]


@pytest.mark.slow
@pytest.mark.parametrize("name", AMP_RECIPES)
def test_amp_recipes_smoke_with_finite_losses_on_cpu_bfloat16(name):
    cfg = load_config(name)
    assert cfg["train"]["amp"] is True
    # T = 2 and 32 px instead of the recipe's T and 224 px: the same network, a CPU-sized batch
    cfg = validate_config(apply_overrides(cfg, [("train.device", "cpu"), ("model.options.timesteps", 2)]))
    res = smoke_test(cfg, batch_size=2, image_size=32, out=None)
    loss = res["loss"]
    assert all(v == v and abs(v) != float("inf") for v in loss.values()), loss
    on = "mpd" if cfg["loss"]["mpd"]["weight"] else "im"
    assert loss[on] > 0, f"the {on} loss should be active in {name}: {loss}"
