"""``extends`` and stages merge recipes key by key, except a component spec that names another
component, which replaces the base's spec."""
from inflor.config import load_config, merge

ESG = {"name": "esg", "k_min": 1.0, "k_max": 10.0}


def test_dicts_merge_key_by_key():
    assert merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}, "b": 1}


def test_same_component_merges_its_settings():
    out = merge({"model": {"options": {"surrogate": ESG}}},
                {"model": {"options": {"surrogate": {"name": "ESG", "k_max": 5.0}}}})
    assert out["model"]["options"]["surrogate"] == {"name": "ESG", "k_min": 1.0, "k_max": 5.0}


def test_another_component_replaces_the_spec():
    base = {"model": {"name": "resnet19", "options": {"timesteps": 4, "surrogate": ESG}}}
    out = merge(base, {"model": {"options": {"surrogate": {"name": "sigmoid", "alpha": 4.0}}}})
    assert out["model"]["options"] == {"timesteps": 4, "surrogate": {"name": "sigmoid", "alpha": 4.0}}
    # sections themselves still merge when their name changes: options stay
    out = merge(base, {"model": {"name": "cifarnet"}})
    assert out["model"] == {"name": "cifarnet", "options": {"timesteps": 4, "surrogate": ESG}}


def test_recipe_extending_an_esg_base_can_pick_another_surrogate(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("extends: imloss_tab2_c10_resnet19_t4\nmodel: {options: {surrogate: {name: tanh, k: 2.0}}}\n")
    assert load_config(str(recipe))["model"]["options"]["surrogate"] == {"name": "tanh", "k": 2.0}
    base = load_config("imloss_tab2_c10_resnet19_t4")["model"]["options"]["surrogate"]
    assert base == ESG
