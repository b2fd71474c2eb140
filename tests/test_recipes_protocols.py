"""The papers' protocols as the shipped recipes resolve them (issue 13): which network, which tdBN
α, which event-frame format, and where every hyper-parameter comes from."""
import re

import torch
import yaml

from inflor.cli import main
from inflor.data import build_datasets
from tests.helpers.dvs_files import CLASSES, make_release
from inflor.models.blocks import BasicBlock, LinearUnit
from inflor.train.config import NOTE_TOPICS, list_recipes, load_config
from inflor.train.specs import static_dataset_info
from inflor.train.trainer import make_model

RECIPES = {name: load_config(name) for name in list_recipes()}
PAPER = {n: c for n, c in RECIPES.items() if c["paper"]["name"]}


def _of(paper: str) -> dict:
    return {n: c for n, c in PAPER.items() if c["paper"]["name"].startswith(paper)}


def test_recdis_resnet19_is_the_tdbn_papers_network_on_the_command_line(capsys):
    assert main(["train", "-c", "recdis_tab1_c10_resnet19_none", "--print-config"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["name"] == "resnet19_fc256" and model["options"]["residual_alpha"] == "tdbn"
    # every RecDis ResNet-19 row (RecDis Sec. 4.5: "consistent with" STBP-tdBN's), DVS included
    rows = {n: c["model"]["name"] for n, c in _of("RecDis").items() if "resnet19" in n}
    assert len(rows) == 13 and set(rows.values()) == {"resnet19_fc256", "resnet19_fc256_dvs"}
    assert rows["recdis_tab6_dvs_resnet19_t10"] == "resnet19_fc256_dvs"
    cfg = RECIPES["recdis_tab6_dvs_resnet19_t10"]
    with torch.device("meta"):
        m = make_model(cfg, static_dataset_info(cfg["data"]["name"], cfg["data"]["options"]))
    assert m.in_channels == 2 and m.hidden.fc.out_features == 256       # event frames, FC 256
    assert all(b.bn2.alpha < 1 for b in m.modules() if isinstance(b, BasicBlock))


def test_each_recipe_names_its_tdbn_alpha():
    want = {"InfLoR": "inflor", "MPR": "inflor", "RecDis": "tdbn", "IM-Loss": "tdbn"}
    for paper, alpha in want.items():
        recipes = _of(paper)
        assert recipes, paper
        for name, cfg in recipes.items():
            assert cfg["model"]["options"].get("residual_alpha") == alpha, name


def test_every_inflor_dvs_recipe_reads_binary_frames(tmp_path):
    dvs = {n: c for n, c in _of("InfLoR").items() if c["data"]["name"] == "cifar10_dvs"}
    assert sorted(dvs) == ["inflor_tab5_dvs_resnet19_t10", "inflor_tab5_dvs_resnet20_t10"]
    make_release(tmp_path, n_per_class=2, n_events=400)
    for name, cfg in dvs.items():
        _, test, _ = build_datasets("cifar10_dvs", root=tmp_path, **{
            **cfg["data"]["options"], "classes": CLASSES, "train_per_class": 1, "progress": False,
            "workers": 0})
        x, _ = test[0]
        assert x.shape == (10, 2, 48, 48), name
        assert set(x.unique().tolist()) == {0.0, 1.0}, name              # 0/1 spikes, some events
    # the other papers state no spike format: their DVS recipes keep the resized counts
    others = [c for n, c in PAPER.items() if c["data"]["name"] == "cifar10_dvs" and n not in dvs]
    assert others and not any(c["data"]["options"].get("binary") for c in others)


def test_imloss_imagenet_vgg16_is_diet_snns_network():
    cfg = RECIPES["imloss_tab2_imagenet_vgg16_t5"]
    assert cfg["model"]["name"] == "vgg16_diet_imagenet"
    with torch.device("meta"):
        m = make_model(cfg, static_dataset_info("imagenet", cfg["data"]["options"]))
    fcs = [u.fc for u in m.classifier if isinstance(u, LinearUnit)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(512 * 7 * 7, 4096), (4096, 4096)]
    assert m.fc.out_features == 1000 and m.norm_kind == "tdbn"


SOURCE = re.compile(r"Sec\.|Eq\.|Table|Fig\.|Algorithm|Experiments|code|script|not stated", re.I)


def test_every_paper_recipe_says_where_each_setting_comes_from():
    assert len(PAPER) == len(RECIPES) - 1
    for name, cfg in PAPER.items():
        notes = cfg["paper"]["notes"]
        assert isinstance(notes, dict), name
        want = {t for t in NOTE_TOPICS if (t != "precision" or cfg["train"]["amp"])
                and (t != "warm_start" or cfg["stages"])}
        assert set(notes) == want, (name, sorted(want ^ set(notes)))
        for topic, text in notes.items():
            assert SOURCE.search(text), (name, topic, text)             # a statement or the code


def test_imloss_epochs_follow_the_paper_with_the_code_named():
    for name, cfg in _of("IM-Loss").items():
        if cfg["data"]["name"] == "imagenet":
            continue
        assert cfg["train"]["epochs"] == 1000, name
        assert "epoch = 1000" in cfg["paper"]["notes"]["epochs"] or "CIFAR setting" in cfg["paper"]["notes"]["epochs"]
    assert "100 epochs" in RECIPES["imloss_tab1_c10_resnet19_im"]["paper"]["notes"]["epochs"]


def test_warm_start_protocols_of_imloss_table1_and_recdis_none_rows():
    """IM-Loss Sec. 5.1: every Table 1 model starts from a short IM-Loss training; RecDis Sec. 4.1:
    the "None" rows from a short MPD-Loss training. No other recipe has stages."""
    from inflor.train.stages import stage_configs

    staged = {n for n, c in RECIPES.items() if c["stages"]}
    imloss_t1 = {n for n, c in _of("IM-Loss").items() if str(c["paper"]["table"]) == "1"}
    recdis_none = {n for n, c in _of("RecDis").items() if c["paper"]["row"].endswith(", None")}
    assert len(imloss_t1) == 12 and len(recdis_none) == 2 and staged == imloss_t1 | recdis_none
    for name in staged:
        cfg = RECIPES[name]
        (w, warm), (m, main_) = stage_configs(cfg, "OUT")
        assert (w, m) == ("warmup", "main"), name
        assert warm["train"]["epochs"] == 1 and warm["train"]["max_steps_per_epoch"] == 100, name
        loss = "im" if name in imloss_t1 else "mpd"
        assert warm["loss"][loss]["weight"] == 2.0, name
        assert main_["train"]["init_from"] == "OUT/warmup/checkpoints/last.pt", name
        # the main stage is the row exactly as the table states it; the warm-up changes only its loss and length
        strip = lambda c: {k: v for k, v in c.items() if k not in ("name", "stages")}  # noqa: E731
        row = strip(cfg)
        assert {**strip(main_), "train": {**main_["train"], "init_from": None}} == row, name
        changed = {k for k in row if strip(warm)[k] != row[k]}
        assert "train" in changed and changed <= {"loss", "train"}, name
        assert "100 iterations" in cfg["paper"]["notes"]["warm_start"], name
    assert all(RECIPES[n]["loss"]["mpd"]["weight"] == 0 for n in recdis_none)
