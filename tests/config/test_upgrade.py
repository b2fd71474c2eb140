"""Configs saved before ESG became a surrogate setting are upgraded on --resume and inflor eval."""
from inflor.config import default_config, upgrade_saved_config, validate_config


def _old(enabled, stage_esg=None):
    cfg = default_config()
    cfg["esg"] = {"enabled": enabled, "k_min": 2.0, "k_max": 8.0}
    if stage_esg:
        cfg["stages"] = {"warmup": {"esg": stage_esg, "train": {"epochs": 1}}, "main": {}}
    return cfg


def test_esg_on_becomes_the_surrogate_it_built():
    up = upgrade_saved_config(_old(True))
    assert "esg" not in up
    assert up["model"]["options"]["surrogate"] == {"name": "esg", "k_min": 2.0, "k_max": 8.0}
    validate_config(up)


def test_esg_off_is_dropped_and_the_input_left_alone():
    old = _old(False)
    up = upgrade_saved_config(old)
    assert "esg" not in up and "surrogate" not in up["model"]["options"]
    assert "esg" in old                                   # a copy, not the caller's dict
    assert validate_config(up) == validate_config({k: v for k, v in old.items() if k != "esg"})


def test_a_stage_esg_section_is_upgraded_too():
    up = upgrade_saved_config(_old(False, {"enabled": True, "k_min": 1.0, "k_max": 4.0}))
    warm = up["stages"]["warmup"]
    assert "esg" not in warm and warm["model"]["options"]["surrogate"] == {"name": "esg", "k_min": 1.0, "k_max": 4.0}
