"""Runs of an ablation are named by the config keys that set them apart."""
import copy

from inflor.analysis.ablation import (describe_runs, differing_keys, flatten_config, format_value, short_names,
                                      unique_labels)

BASE = {"name": "default", "description": "tinyconv on digits",
        "model": {"name": "tinyconv", "options": {"neuron": "srif", "width": 8}},
        "data": {"name": "digits", "root": None, "options": {}},
        "loss": {"mpd": {"weight": 0.0, "k_d": 1.0}, "im": {"weight": 0.0}},
        "esg": {"enabled": False}, "optim": {"betas": [0.9, 0.999]},
        "train": {"epochs": 3, "seed": 0, "progress": "bar"}, "sched": {"epochs": None},
        "paper": {"name": None, "table": None}}


def _cfg(**changes):
    """BASE with dotted keys changed."""
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = cfg
        for p in path:
            node = node[p]
        node[last] = value
    return cfg


def test_flatten_and_differing_keys():
    flat = flatten_config(BASE)
    assert flat["model.options.neuron"] == "srif" and flat["data.options"] == {}
    assert flat["optim.betas"] == (0.9, 0.999)
    a = _cfg(train__progress="none", data__root="/elsewhere", description="other words")
    b = _cfg(model__options__neuron="inflor", loss__mpd__weight=2.0)
    # progress output, data location and the description never tell runs apart
    assert differing_keys([BASE, a]) == []
    assert differing_keys([BASE, a, b]) == ["model.options.neuron", "loss.mpd.weight"]
    c = _cfg()
    c["model"]["options"]["mpr_k"] = 5           # a key only one run has
    assert differing_keys([BASE, c]) == ["model.options.mpr_k"]


def test_short_names_are_unambiguous():
    keys = ["model.options.neuron", "loss.mpd.weight", "train.epochs", "name", "model.name", "train.seed"]
    names = short_names(keys, [BASE])
    assert names == {"model.options.neuron": "neuron", "loss.mpd.weight": "mpd.weight",
                     "train.epochs": "train.epochs", "name": "name", "model.name": "model.name",
                     "train.seed": "seed"}


def test_format_value():
    assert [format_value(v) for v in (2.0, 0.25, True, None, (0.9, 0.999), "if", 3)] == \
        ["2", "0.25", "true", "null", "[0.9, 0.999]", "if", "3"]


def test_the_ablation_of_the_issue():
    """if, srif, inflor and if with MPD-Loss: labels say which is which."""
    configs = [_cfg(model__options__neuron="if"), _cfg(model__options__neuron="srif"),
               _cfg(model__options__neuron="inflor"), _cfg(model__options__neuron="if", loss__mpd__weight=2.0)]
    labels, names, values = describe_runs(configs, ["r1", "r2", "r3", "r4"])
    assert labels == ["neuron=if", "neuron=srif", "neuron=inflor", "neuron=if, mpd.weight=2"]
    assert names == {"model.options.neuron": "neuron", "loss.mpd.weight": "mpd.weight"}
    assert values[0] == {"neuron": "if", "mpd.weight": "0"} and values[3] == {"neuron": "if", "mpd.weight": "2"}


def test_labels_fall_back_and_stay_unique():
    # only an "off" value differs: it is named rather than dropped
    labels, _, _ = describe_runs([BASE, _cfg(esg__enabled=True)], ["a", "b"])
    assert labels == ["esg.enabled=false", "esg.enabled=true"]
    # nothing differs: the folder names
    assert describe_runs([BASE, BASE], ["seed3", "seed4"])[0] == ["seed3", "seed4"]
    # the user's labels win; repeats get the folder name, then a number
    assert describe_runs([BASE, BASE], ["x", "y"], ["a", "a"])[0] == ["a (x)", "a (y)"]
    assert unique_labels(["", "", "b"], ["run", "run", "c"]) == ["run", "run (2)", "b"]
