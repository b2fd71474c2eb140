"""Tests of inflor.models: parameter counts from the layer tables, shapes, options, errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from inflor.models import COMMON_OPTIONS, create_model, list_models, model_options, to_time_first
from inflor.models.blocks import BasicBlock, TemporalDropout
from inflor.mpr import MPR
from inflor.neuron import PRESETS, spiking_nodes
from inflor.norm import TemporalBatchNorm
from inflor.surrogate import ESG, Rectangle, Tanh

ALL = ["cifarnet", "cifarnet_dvs", "cifarnet_voting", "resnet18", "resnet19", "resnet19_dvs",
       "resnet19_fc256", "resnet19_fc256_dvs", "resnet20", "resnet20_diet", "resnet20_dvs", "resnet34",
       "tinyconv", "vgg16", "vgg16_diet", "vgg16_diet_imagenet"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are small here; one intra-op thread avoids oversubscription on shared CPUs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_meta(name, **kw):
    """Build on the meta device: no memory, no init cost (for counts and key checks)."""
    with torch.device("meta"):
        return create_model(name, **kw)


# ------------------------------------------------------------------ layer-table arithmetic
def conv(cin, cout, k, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):          # tdBN / BN: γ and β per channel
    return 2 * c


def fc(i, o, bias=True):
    return i * o + (o if bias else 0)


def block(cin, cout, stride, norm=True):
    """BasicBlock: conv3×3 → BN → conv3×3 → BN, + conv1×1 → BN projection when the shape changes."""
    n = conv(cin, cout, 3) + conv(cout, cout, 3) + (2 * bn(cout) if norm else 0)
    if stride != 1 or cin != cout:
        n += conv(cin, cout, 1) + (bn(cout) if norm else 0)
    return n


def stages(c, table, norm=True):
    n = 0
    for width, blocks, stride in table:
        n += block(c, width, stride, norm) + (blocks - 1) * block(width, width, 1, norm)
        c = width
    return n


def expected_params(name: str, K: int) -> int:
    if name in ("resnet19", "resnet19_dvs", "resnet19_fc256", "resnet19_fc256_dvs"):
        cin = 2 if name.endswith("dvs") else 3
        n = conv(cin, 128, 3) + bn(128)                                  # stem
        n += stages(128, [(128, 3, 1), (256, 3, 2), (512, 2, 2)])        # 3 + 3 + 2 blocks
        if name.startswith("resnet19_fc256"):
            return n + fc(512, 256) + fc(256, K)                          # FC 256 → neuron → FC K
        return n + fc(512, K)
    if name in ("resnet20", "resnet20_dvs"):
        cin = 2 if name.endswith("dvs") else 3
        n = conv(cin, 64, 3) + bn(64) + 2 * (conv(64, 64, 3) + bn(64))  # 3 pre-convs
        n += stages(64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)])  # avg-down: same params
        return n + fc(512, K)
    if name == "resnet20_diet":                                          # no BN, flatten 512·2·2
        n = conv(3, 64, 3) + 2 * conv(64, 64, 3)
        n += stages(64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], norm=False)
        return n + fc(512 * 2 * 2, K, bias=False)
    if name in ("resnet18", "resnet34"):
        blocks = (2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3)
        n = conv(3, 64, 7) + bn(64)
        n += stages(64, [(64, blocks[0], 1), (128, blocks[1], 2), (256, blocks[2], 2), (512, blocks[3], 2)])
        return n + fc(512, K)
    if name == "vgg16":                     # config D, conv bias=True + BN, FC 512→K
        widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        c, n = 3, 0
        for w in widths:
            n += conv(c, w, 3, bias=True) + bn(w)
            c = w
        return n + fc(512, K)
    if name in ("vgg16_diet", "vgg16_diet_imagenet"):  # no bias, no BN; flat → 4096 → 4096 → K
        widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        c, n = 3, 0
        for w in widths:
            n += conv(c, w, 3)
            c = w
        flat = 512 * 2 * 2 if name == "vgg16_diet" else 512 * 7 * 7     # 32 px / 16; 224 px / 32
        return n + fc(flat, 4096, False) + fc(4096, 4096, False) + fc(4096, K, False)
    if name in ("cifarnet", "cifarnet_voting", "cifarnet_dvs"):
        cin, side = (2, 12) if name.endswith("dvs") else (3, 8)
        n = conv(cin, 128, 3) + bn(128) + conv(128, 256, 3) + bn(256) + conv(256, 512, 3) + bn(512)
        n += conv(512, 1024, 3) + bn(1024) + conv(1024, 512, 3) + bn(512)
        n += fc(512 * side * side, 1024, False) + bn(1024) + fc(1024, 512, False) + bn(512)  # 1-d tdBN
        return n + fc(512, 10 * K if name == "cifarnet_voting" else K)
    if name == "tinyconv":
        return conv(1, 32, 3) + bn(32) + conv(32, 64, 3) + bn(64) + fc(64 * 4 * 4, K)
    raise KeyError(name)


def test_registry_lists_every_model():
    assert list_models() == sorted(ALL)
    assert list_models("*_dvs") == ["cifarnet_dvs", "resnet19_dvs", "resnet19_fc256_dvs", "resnet20_dvs"]
    assert list_models("resnet1?") == ["resnet18", "resnet19"]


@pytest.mark.parametrize("K", [10, 100, 1000])
@pytest.mark.parametrize("name", ALL)
def test_parameter_counts(name, K):
    assert n_params(build_meta(name, num_classes=K)) == expected_params(name, K)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_imagenet_resnets_match_torchvision_counts(name):
    import torchvision
    with torch.device("meta"):
        ref = getattr(torchvision.models, name)(num_classes=1000)
    assert n_params(build_meta(name, num_classes=1000)) == n_params(ref)


# ------------------------------------------------------------------ forward / backward
# (options, input side) keeping every model small: flatten models get a small input_size.
SMALL = {
    "cifarnet": (dict(input_size=8), 8), "cifarnet_voting": (dict(input_size=8), 8),
    "cifarnet_dvs": (dict(input_size=8), 8), "resnet20_diet": (dict(input_size=16), 16),
    "vgg16_diet": (dict(input_size=16), 16), "vgg16_diet_imagenet": (dict(input_size=32), 32),
    "vgg16": ({}, 32), "tinyconv": ({}, 8),
    "resnet18": ({}, 32), "resnet34": ({}, 32),
}


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_and_backward(name):
    torch.manual_seed(0)
    opts, side = SMALL.get(name, ({}, 8))
    model = create_model(name, num_classes=7, timesteps=2, **opts)
    C = model.in_channels
    assert C == (2 if name.endswith("_dvs") else 1 if name == "tinyconv" else 3)
    out = model(torch.randn(2, C, side, side))                       # static: repeated T times
    assert out.shape == (2, 2, 7)
    out.mean(0).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    if model.has_norm:  # deep nets without a norm may start silent (IM-Loss Fig. 2)
        first = next(p for n, p in model.named_parameters() if n.endswith("weight"))
        assert first.grad.abs().sum() > 0, "no gradient reaches the encoder conv"
    with torch.no_grad():
        ev = model((torch.rand(2, 3, C, side, side) > 0.7).float())  # event frames [B, T, C, H, W]
    assert ev.shape == (3, 2, 7)                                     # T comes from the data


def test_event_input_is_time_first_and_matches_static():
    torch.manual_seed(0)
    model = create_model("tinyconv", timesteps=3).eval()
    x = torch.randn(4, 1, 8, 8)
    frames = torch.stack([x, x, x], dim=1)                           # [B, T, C, H, W]
    assert torch.equal(to_time_first(frames)[1], x)
    torch.testing.assert_close(model(frames), model(x))
    # distinct frames reach the network at their own step
    frames2 = frames.clone()
    frames2[:, 2] = 0
    out2 = model(frames2)
    torch.testing.assert_close(out2[:2], model(x)[:2])
    assert not torch.allclose(out2[2], model(x)[2])


def test_dvs_defaults():
    for name in list_models("*_dvs"):
        opts = model_options(name)
        assert opts["in_channels"] == 2 and opts["timesteps"] == 10
    m = build_meta("resnet19_dvs")
    assert m(torch.randn(1, 2, 48, 48, device="meta")).shape == (10, 1, 10)
    assert model_options("cifarnet_dvs")["input_size"] == 48


# ------------------------------------------------------------------ options take effect
def _nodes(model):
    return [m for _, m in spiking_nodes(model)]


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_neuron_kind(kind):
    m = build_meta("resnet20", neuron=kind)
    preset = PRESETS[kind]
    nodes = _nodes(m)
    assert len(nodes) == 3 + 2 * 8
    for node in nodes:
        assert node.cfg.decay == preset["decay"] and node.cfg.reset == preset["reset"]
        assert node.cfg.input_scale == preset.get("input_scale", 1.0)
        assert (node.mpr is not None) == (kind == "inflor")


def test_mpr_surrogate_neuron_options():
    m = create_model("resnet19", neuron="srif", mpr="tanh", mpr_k=5.0, surrogate={"name": "esg"},
                   neuron_options={"v_threshold": 0.3, "detach_reset": True})
    nodes = _nodes(m)
    assert all(n.mpr == MPR("tanh", 5.0) for n in nodes)
    assert all(isinstance(n.surrogate_function, ESG) for n in nodes)
    assert all(n.v_threshold == 0.3 and n.detach_reset for n in nodes)
    assert all(b.v_threshold == 0.3 for b in m.modules() if isinstance(b, TemporalBatchNorm))
    assert all(n.mpr is None for n in _nodes(build_meta("resnet19", neuron="inflor", mpr="none")))
    assert all(n.mpr == MPR("inflor", 4.0) for n in _nodes(build_meta("tinyconv", neuron="inflor", mpr_k=4.0)))
    assert all(isinstance(n.surrogate_function, Rectangle) for n in _nodes(build_meta("tinyconv")))
    sg = [n.surrogate_function for n in _nodes(create_model("tinyconv", surrogate={"name": "tanh", "k": 5}))]
    assert all(type(s) is Tanh and s.k == 5 for s in sg)


def test_esg_advances_on_every_neuron():
    m = create_model("tinyconv", surrogate="esg")
    esgs = [s for s in m.modules() if isinstance(s, ESG)]
    assert len(esgs) == 2
    for s in esgs:
        s.set_epoch(5, 10)
    assert all(n.surrogate_function.k == pytest.approx(esgs[0].k) for n in _nodes(m))
    assert esgs[0].k > 1.0
    # K is a buffer: it survives state_dict round trips
    m2 = create_model("tinyconv", surrogate="esg")
    m2.load_state_dict(m.state_dict())
    assert all(s.k == pytest.approx(esgs[0].k) for s in m2.modules() if isinstance(s, ESG))


@pytest.mark.parametrize("norm", ["tdbn", "bn", "none"])
def test_norm_option(norm):
    m = build_meta("resnet19", norm=norm)
    bns = [b for b in m.modules() if isinstance(b, TemporalBatchNorm)]
    if norm == "none":
        assert not bns
    else:
        assert len(bns) == 1 + 2 * 8 + 2                              # stem, 2 per block, 2 shortcuts
        assert all(b.threshold_dependent == (norm == "tdbn") for b in bns)
    fc_norms = [b for b in build_meta("cifarnet", norm=norm).modules()
                if isinstance(b, TemporalBatchNorm) and b.dims == 1]
    assert len(fc_norms) == (0 if norm == "none" else 2)


def test_diet_variants_default_to_no_norm():
    for name in ("resnet20_diet", "vgg16_diet", "vgg16_diet_imagenet"):
        assert not any(isinstance(b, TemporalBatchNorm) for b in build_meta(name).modules())
        assert any(isinstance(b, TemporalBatchNorm) for b in build_meta(name, norm="tdbn").modules())


@pytest.mark.parametrize("name,blocks,standalone", [("resnet19", 8, 1), ("resnet19_fc256", 8, 2),
                                                    ("resnet20", 8, 3), ("resnet34", 16, 1),
                                                    ("cifarnet", 0, 7), ("vgg16", 0, 13)])
def test_roles_and_im_restrict(name, blocks, standalone):
    nodes = _nodes(build_meta(name))
    roles = [n.role for n in nodes]
    assert roles.count("block_inner") == blocks and roles.count("block_output") == blocks
    assert roles.count("standalone") == standalone
    assert all(n.im_restrict == (n.role != "block_inner") for n in nodes)
    assert all(n.im_restrict for n in _nodes(build_meta(name, restrict_inner=True)))
    for b in build_meta(name).modules():
        if isinstance(b, BasicBlock):
            assert b.neuron1.role == "block_inner" and b.neuron_out.role == "block_output"


def test_tdbn_alpha_convention():
    m = build_meta("resnet19")
    a = 1 / math.sqrt(2)
    assert m.stem[0].norm.alpha == 1.0
    ident, proj = m.layer1[0], m.layer2[0]
    assert not ident.projection and proj.projection
    assert ident.bn1.alpha == 1.0 and ident.bn2.alpha == 1.0
    assert proj.bn1.alpha == 1.0 and proj.bn2.alpha == pytest.approx(a)
    assert proj.shortcut[1].alpha == pytest.approx(a)
    assert proj.bn2.scale == pytest.approx(a * 0.5)                  # α·V_th
    r20 = build_meta("resnet20").layer2[0]                           # avg-down projection
    assert [type(s.module if hasattr(s, "module") else s).__name__ for s in r20.shortcut] == \
        ["AvgPool2d", "Conv2d", "TemporalBatchNorm"]
    assert r20.bn2.alpha == pytest.approx(a) and r20.shortcut[2].alpha == pytest.approx(a)


def test_residual_alpha_option_sets_the_second_norm_of_every_block():
    # hand case: bn2 of a block sees channel values {1, 3} (mean 2, biased variance 1), so at init
    # (γ = 1, β = 0) it outputs ±α·V_th = ±0.5 with α = 1 and ±0.5/√2 = ±0.35355 with α = 1/√2
    def x(c):   # [T, B, C, H, W] = [1, 2, c, 1, 1]: sample 0 holds 1, sample 1 holds 3
        return torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1, 1).expand(1, 2, c, 1, 1).contiguous()

    for option, ident_out in (("inflor", 0.5), ("tdbn", 0.5 / math.sqrt(2))):
        m = create_model("resnet19", residual_alpha=option).train()
        ident, proj = m.layer1[0], m.layer2[0]
        assert not ident.projection and proj.projection
        torch.testing.assert_close(ident.bn2(x(128))[0, :, 0, 0, 0], torch.tensor([-ident_out, ident_out]),
                                   rtol=0, atol=1e-5)
        # blocks with a projection, bn1 and the shortcut norm do not depend on the option
        y = proj.bn2(x(256))[0, :, 0, 0, 0]
        torch.testing.assert_close(y, torch.tensor([-0.35355, 0.35355]), rtol=0, atol=1e-5)
        assert ident.bn1.alpha == 1.0 and proj.shortcut[1].alpha == pytest.approx(1 / math.sqrt(2))
        assert m.model_options["residual_alpha"] == option
    # every block follows the option
    tdbn = build_meta("resnet19_fc256", residual_alpha="tdbn")
    assert all(b.bn2.alpha == pytest.approx(1 / math.sqrt(2)) for b in tdbn.modules()
               if isinstance(b, BasicBlock))
    with pytest.raises(ValueError, match="residual_alpha.*'inflor', 'tdbn'"):
        create_model("tinyconv", residual_alpha="stbp")


def test_rebuild_from_model_options():
    m = create_model("resnet19_dvs", num_classes=5, neuron="inflor", surrogate="esg",
                     neuron_options={"v_threshold": 0.4}, norm="bn", restrict_inner=True)
    assert m.model_name == "resnet19_dvs"
    assert m.model_options["num_classes"] == 5 and m.model_options["in_channels"] == 2
    assert set(COMMON_OPTIONS) <= set(m.model_options)
    m2 = create_model(m.model_name, **m.model_options)
    assert m2.model_options == m.model_options
    sd, sd2 = m.state_dict(), m2.state_dict()
    assert list(sd) == list(sd2) and all(sd[k].shape == sd2[k].shape for k in sd)
    m2.load_state_dict(sd)
    # calling a builder directly also names the model
    from inflor.models import tinyconv
    t = tinyconv(num_classes=3)
    assert t.model_name == "tinyconv" and t.model_options["num_classes"] == 3


def test_model_options_are_independent_copies():
    no = {"v_threshold": 0.4}
    m = create_model("tinyconv", neuron_options=no)
    no["v_threshold"] = 0.9
    assert m.model_options["neuron_options"] == {"v_threshold": 0.4}


# ------------------------------------------------------------------ errors
def test_unknown_name_and_option_errors():
    with pytest.raises(ValueError, match="resnet19"):
        create_model("resnet99")
    with pytest.raises(ValueError, match="restrict_inner"):
        create_model("tinyconv", dropout=0.1)            # tinyconv has no dropout option
    with pytest.raises(ValueError, match="srif"):
        create_model("tinyconv", neuron="izhikevich")
    with pytest.raises(ValueError, match="tdbn"):
        create_model("tinyconv", norm="layernorm")
    with pytest.raises(ValueError, match="esg"):
        create_model("tinyconv", surrogate="magic")
    with pytest.raises(ValueError, match="inflor"):
        create_model("tinyconv", mpr="cubic")
    with pytest.raises(ValueError, match="v_threshold"):
        create_model("tinyconv", neuron_options={"threshold": 1.0})
    with pytest.raises(ValueError, match="surrogate"):
        create_model("tinyconv", neuron_options={"surrogate_function": "esg"})
    with pytest.raises(ValueError, match="MPR is off"):
        create_model("tinyconv", mpr_k=3.0)
    with pytest.raises(ValueError, match="timesteps"):
        create_model("tinyconv", timesteps=0)


def test_wrong_input_shape_errors():
    m = create_model("tinyconv", timesteps=2)
    for bad in (torch.randn(1, 8, 8), torch.randn(2, 3, 8, 8), torch.randn(2, 2, 3, 8, 8),
                torch.randn(1, 1, 1, 1, 8, 8)):
        with pytest.raises(ValueError, match=r"\[B, 1, H, W\].*T=2.*\[B, T, 1, H, W\]"):
            m(bad)
    with pytest.raises(ValueError, match="H = W = 8"):
        m(torch.randn(2, 1, 16, 16))


# ------------------------------------------------------------------ pieces
def test_temporal_dropout_shares_mask_over_time():
    torch.manual_seed(0)
    d = TemporalDropout(0.5)
    y = d(torch.ones(4, 3, 100))
    assert torch.equal(y[0], y[3]) and (y[0] == 0).any() and (y[0] == 2).any()
    assert torch.equal(d.eval()(torch.ones(4, 3, 100)), torch.ones(4, 3, 100))


def test_voting_head_averages_groups_of_ten():
    torch.manual_seed(0)
    m = create_model("cifarnet_voting", num_classes=3, input_size=8, timesteps=2).eval()
    assert m.fc.out_features == 30
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        feats = m.classifier(m.features(m.to_multistep(x)))
        torch.testing.assert_close(m(x), m.fc(feats).reshape(2, 2, 3, 10).mean(-1))
