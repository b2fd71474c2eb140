"""Run configuration: defaults, recipes, overrides and the error messages for bad input."""
import re

import pytest

from inflor.train.config import (ConfigError, apply_overrides, config_diff, default_config, list_recipes,
                                 load_config, load_recipe, parse_overrides, validate_config, yaml_load)


def test_default_recipe_is_tinyconv_on_digits():
    cfg = load_config()
    assert cfg["name"] == "default"
    assert (cfg["model"]["name"], cfg["data"]["name"]) == ("tinyconv", "digits")
    assert cfg["sched"]["name"] == "cosine" and cfg["optim"]["name"] == "sgd"


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optim.lrr=0.1"])
    msg = str(e.value)
    assert "unknown key 'optim.lrr'" in msg
    assert "valid keys under 'optim': name, lr, momentum" in msg
    assert "did you mean 'optim.lr'" in msg


def test_unknown_top_level_and_nested_keys():
    with pytest.raises(ConfigError, match="valid keys at the top level: name, description, model"):
        load_config(None, ["modle.name=x"])
    with pytest.raises(ConfigError, match="valid keys under 'loss.mpd': weight, terms, k_d, k_s, k_m"):
        validate_config({"loss": {"mpd": {"wieght": 2}}})
    with pytest.raises(ConfigError, match="'optim.lr' is a value and takes no sub-keys"):
        load_config(None, ["optim.lr.x=1"])


@pytest.mark.parametrize("override, match", [
    ("optim.name=rmsprop", "valid choices: sgd, adam, adamw"),
    ("sched.name=step", "valid choices: cosine, none"),
    ("loss.task=mse", "valid choices: ce_mean, ce_per_step"),
    ("loss.im.form=x", "valid choices: paper, official"),
    ("optim.lr=-1", "'optim.lr' must be > 0"),
    ("optim.lr=fast", "'optim.lr' must be a number"),
    ("train.epochs=2.5", "'train.epochs' must be an integer"),
    ("train.deterministic=maybe", "must be true or false"),
    ("loss.mpd.terms=DX", "combination of the letters D"),
    ("train.device=tpu", "valid choices: auto, cpu, cuda, cuda:N"),
    ("data.batch_size=0", "'data.batch_size' must be >= 1"),
    ("model.options=3", "must be a mapping"),
])
def test_bad_values_name_the_choices(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_overrides_are_yaml_and_read_exponents_as_numbers():
    cfg = load_config(None, ["optim.weight_decay=5e-4", "model.options.neuron_options={decay: 0.5}",
                             "loss.mpd.terms=dm", "train.grad_clip=null", "optim.lr=1"])
    assert cfg["optim"]["weight_decay"] == 5e-4
    assert cfg["model"]["options"]["neuron_options"] == {"decay": 0.5}
    assert cfg["loss"]["mpd"]["terms"] == "DM"
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert yaml_load("x: 1e-4")["x"] == 1e-4


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="not of the form dotted.key=value"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_overrides(["model.options={a: [1"])


def test_cross_field_rules():
    with pytest.raises(ConfigError, match=r"model.options.surrogate.k_min \(20.0\) must be <= "
                                          r"model.options.surrogate.k_max \(10.0\)"):
        load_config(None, ["model.options.surrogate={name: esg, k_min: 20}"])
    with pytest.raises(ConfigError, match=r"'model.options.surrogate.k_max' must be > 0, got 0"):
        load_config(None, ["model.options.surrogate={name: ESG, k_max: 0}"])
    with pytest.raises(ConfigError, match="warmup"):
        load_config(None, ["train.epochs=3", "sched.warmup=3"])


def test_recipe_not_found_suggests_names():
    with pytest.raises(ConfigError, match="did you mean: default"):
        load_config("defualt")


def test_extends_merges_dicts(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {name: tinyconv, options: {timesteps: 2, norm: bn}}\n"
                                        "train: {epochs: 3}\n")
    (tmp_path / "child.yaml").write_text("extends: base\nmodel: {options: {norm: none}}\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg["model"]["options"] == {"timesteps": 2, "norm": "none"}
    assert cfg["train"]["epochs"] == 3 and cfg["name"] == "child"
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_recipe(str(tmp_path / "loop.yaml"))


def test_every_shipped_recipe_validates_and_names_its_paper_row():
    names = list_recipes()
    assert "default" in names and len(names) > 100
    for name in names:
        cfg = load_config(name)
        if name != "default":
            p = cfg["paper"]
            assert p["name"] and p["table"] is not None and p["row"], name
            assert p["reported_acc"] is not None and 0.5 < p["reported_acc"] < 1, name


def test_config_diff_ignores_runtime_keys():
    a = default_config()
    b = apply_overrides(a, [("train.device", "cpu"), ("optim.lr", 0.5)])
    assert config_diff(a, b) == ["optim.lr: 0.1 -> 0.5"]


def test_paper_notes_merge_by_topic_and_name_known_topics(tmp_path):
    (tmp_path / "base.yaml").write_text("paper: {notes: {epochs: 'Sec. 4.1, 400.', batch: 'Sec. 4.1, 128.'}}\n")
    (tmp_path / "child.yaml").write_text("extends: base\npaper: {notes: {epochs: 'Fig. 2, 1000.'}}\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg["paper"]["notes"] == {"epochs": "Fig. 2, 1000.", "batch": "Sec. 4.1, 128."}
    assert load_config(None, ["paper.notes=plain text"])["paper"]["notes"] == "plain text"
    with pytest.raises(ConfigError, match="unknown topic 'epoch' in 'paper.notes'.*did you mean 'epochs'"):
        validate_config({"paper": {"notes": {"epoch": "x"}}})
    with pytest.raises(ConfigError, match="'paper.notes.seed' must be a non-empty string"):
        validate_config({"paper": {"notes": {"seed": 2022}}})
    # notes are metadata: a resumed run may carry other notes
    other = apply_overrides(cfg, [("paper.notes", {"epochs": "code, 100."})])
    assert config_diff(cfg, validate_config(other)) == []


def test_esg_is_a_surrogate_and_the_old_section_says_what_to_write(tmp_path):
    cfg = load_config(None, ["model.options.surrogate={name: esg, k_min: 2.0, k_max: 5.0}"])
    assert cfg["model"]["options"]["surrogate"] == {"name": "esg", "k_min": 2.0, "k_max": 5.0}
    assert "esg" not in cfg
    spec = "model.options.surrogate={name: esg, k_min: 1.0, k_max: 7}"
    with pytest.raises(ConfigError, match=re.escape(f"'esg.k_max': the esg section is gone") + ".*" + re.escape(spec)):
        load_config(None, ["esg.k_max=7"])
    old = tmp_path / "old.yaml"
    old.write_text("esg: {enabled: true, k_min: 2.0, k_max: 10.0}\n")
    with pytest.raises(ConfigError, match=re.escape(
            "'esg': the esg section is gone, ESG is a surrogate setting (model.options.surrogate: {name: esg, "
            "k_min, k_max}); write model: {options: {surrogate: {name: esg, k_min: 2.0, k_max: 10.0}}}")):
        load_config(str(old))
    old.write_text("stages:\n  warm: {esg: {enabled: false}}\n  main: {}\n")
    with pytest.raises(ConfigError, match=r"'stages.warm.esg': .*delete it \(ESG was off\) and set "
                                          r"model.options.surrogate"):
        load_config(str(old))
    with pytest.raises(ConfigError, match="'stages.main.esg.enabled': the esg section is gone"):
        load_config("imloss_tab1_c10_resnet19_esg", ["stages.main.esg.enabled=true"])
