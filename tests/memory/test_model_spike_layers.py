"""Registered models use SpikeConv2d / SpikeLinear exactly where a layer's input is a neuron's
spikes: counted per architecture, and checked at run time (a spike layer refuses real values)."""
import pytest
import torch
from torch import nn

from inflor.layers import SpikeConv2d, SpikeLinear, unspike
from inflor.models import create_model
from inflor.neuron import BaseNode


def spike_layers(model):
    return [n for n, m in model.named_modules() if isinstance(m, (SpikeConv2d, SpikeLinear))]


@pytest.mark.parametrize("name,opts,n_conv,n_lin", [
    # stem sees the image; 16 block convs + 2 projections see spikes; fc sees the average pool
    ("resnet19", {}, 18, 0),
    # 128→256 and 1024→512 follow a neuron, the other convs a pool; all three FCs see spikes
    ("cifarnet", dict(input_size=8), 2, 3),
    ("tinyconv", {}, 1, 0),
    # dropout after every conv not followed by a pool: only the convs right after a pool... none
    ("vgg16_diet", dict(input_size=16), 0, 0),
    ("vgg16", {}, 8, 0),
    # avg-down projections with stride pool first; after the stem pool, stage 1's first block not
    ("resnet20", {}, 2 + 16 - 2 + 1, 0),
])
def test_spike_layers_where_the_input_is_spikes(name, opts, n_conv, n_lin):
    with torch.device("meta"):
        model = create_model(name, **opts)
    names = spike_layers(model)
    convs = [n for n in names if isinstance(model.get_submodule(n), SpikeConv2d)]
    assert (len(convs), len(names) - len(convs)) == (n_conv, n_lin), names


@pytest.mark.parametrize("name,opts,side", [("resnet19", {}, 8), ("cifarnet", dict(input_size=8), 8),
                                            ("resnet20", {}, 8), ("vgg16", {}, 32)])
def test_spike_layers_see_only_spikes_in_training(name, opts, side):
    """Every spike layer checks its input when it keeps it: a training step would raise on a
    real value."""
    torch.manual_seed(0)
    model = create_model(name, timesteps=2, **opts).train()
    seen = {}

    def record(name):
        def hook(mod, args):
            seen[name] = bool(((args[0] == 0) | (args[0] == 1)).all())
        return hook

    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_pre_hook(record(n))
    model(torch.randn(2, 3, side, side)).mean(0).sum().backward()
    spikes = set(spike_layers(model))
    assert all(seen[n] for n in spikes)
    assert spikes, "no spike layer"


def test_no_spike_layers_when_the_surrogate_is_smooth():
    with torch.device("meta"):
        model = create_model("resnet19", surrogate={"name": "rectangle", "spiking": False})
    assert not spike_layers(model)


def test_unspike_gives_the_torch_layers_for_an_ann_twin():
    model = create_model("tinyconv", timesteps=2)
    for parent in list(model.modules()):
        for cn, child in list(parent.named_children()):
            if isinstance(child, BaseNode):
                setattr(parent, cn, nn.ReLU())
    with pytest.raises(ValueError, match="binary"):
        model(torch.rand(2, 1, 8, 8))
    unspike(model)
    assert not spike_layers(model)
    model(torch.rand(2, 1, 8, 8)).sum().backward()


@pytest.mark.parametrize("in_kernel", [True, False])
def test_a_resnet_packs_each_block_input_once_for_conv_and_shortcut(monkeypatch, in_kernel):
    # every block of this ResNet-19-shaped net sees spikes: its first conv packs them, and its
    # shortcut (an identity's spikes, or a 1×1 spike conv) reuses those bytes; with the fused
    # neurons writing their spikes' bytes themselves nothing is packed at all
    from inflor import bitpack
    from inflor.fused import ops
    if not in_kernel:
        monkeypatch.setattr(ops, "bits_in_kernel", lambda x, stats: False)
    from inflor.models.blocks import BasicBlock
    from inflor.models.resnet import SpikingResNet
    real, kept = [], []
    pack, pack_kept = bitpack.pack_spikes, bitpack.pack_kept_spikes
    monkeypatch.setattr(bitpack, "pack_spikes", lambda t: real.append(t) or pack(t))
    torch.manual_seed(0)
    model = SpikingResNet(10, stem=[(8, 3, 1)], stages=[(8, 2, 1), (16, 1, 2)], timesteps=8,
                          neuron_options={"backend": "fused"})
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 3 and all(b.input_spikes for b in blocks)
    import inflor.layers
    import inflor.pairing
    for mod in (inflor.layers, inflor.pairing):
        monkeypatch.setattr(mod, "pack_kept_spikes", lambda t: kept.append(t) or pack_kept(t))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    # packings asked for: per block conv1, conv2 and the shortcut (identity or 1×1 conv)
    assert len(kept) == 3 * len(blocks)
    assert len(real) == (0 if in_kernel else len(kept) - len(blocks))


@pytest.mark.parametrize("T", [4, 8])
def test_a_checkpointed_resnet_with_fused_neurons_trains_as_the_plain_one(T):
    """Activation checkpointing recomputes each block's forward in backward and checks that it
    saves tensors of the same shapes: the spike layers' kept bytes must not depend on whether
    the neuron's own bytes were still remembered (9 blocks: more than ``bitpack.RECENT``)."""
    import copy
    from inflor.checkpointing import checkpoint_modules
    from inflor.models.blocks import BasicBlock
    from inflor.models.resnet import SpikingResNet
    torch.manual_seed(0)
    model = SpikingResNet(10, stem=[(8, 3, 1)], stages=[(8, 9, 1)], timesteps=T,
                          neuron_options={"backend": "fused"})
    ckpt = copy.deepcopy(model)
    assert len(checkpoint_modules(ckpt, types=(BasicBlock,))) == 9
    x = torch.randn(2, 3, 8, 8)
    grads = []
    for m in (model, ckpt):
        m(x).sum().backward()
        grads.append([p.grad for p in m.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
