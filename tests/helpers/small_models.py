"""Small instances of every registered model, shared by the deployment tests (tests/deploy/)."""
import pytest
import torch

from inflor.models import create_model, list_models, model_options
from inflor.norm import TemporalBatchNorm

#: options that keep each registered model small (input sizes a few pixels wide)
SMALL = {
    "tinyconv": dict(width=4, input_size=8),
    "vgg16": dict(input_size=32),
    "vgg16_diet": dict(input_size=16),
    "vgg16_diet_imagenet": dict(input_size=32),
    "resnet20_diet": dict(input_size=16),
    "resnet20": dict(input_size=16),          # avg-down shortcuts divide the map evenly from 16 on
    "resnet20_dvs": dict(input_size=16),
    "resnet18": dict(input_size=16),
    "resnet34": dict(input_size=16),
    "cifarnet": dict(input_size=4),
    "cifarnet_voting": dict(input_size=4),
    "cifarnet_dvs": dict(input_size=4),
}
#: models whose small instance still takes seconds per test on a 2-core CPU
HEAVY = {"vgg16", "vgg16_diet", "vgg16_diet_imagenet", "resnet34", "resnet18", "resnet20", "resnet20_dvs",
         "resnet20_diet", "resnet19", "resnet19_fc256_dvs", "resnet19_dvs"}


def small_model(name: str, seed: int = 0, **options) -> tuple[torch.nn.Module, torch.Tensor]:
    """(model in eval mode with random BN statistics, an input batch): static images, or event
    frames [B, T, C, H, W] for the DVS variants."""
    torch.manual_seed(seed)
    size = SMALL.get(name, {}).get("input_size", 8)
    accepted = model_options(name)
    builder_opts = {k: v for k, v in SMALL.get(name, {}).items() if k in accepted}
    builder_opts.update(options)
    builder_opts.setdefault("timesteps", 3)
    m = create_model(name, num_classes=3, **builder_opts)
    for bn in m.modules():
        if isinstance(bn, TemporalBatchNorm):
            with torch.no_grad():
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.8, 1.5)
                bn.bias.uniform_(-0.1, 0.3)
    m.eval()
    C = m.in_channels
    if name.endswith("_dvs"):
        x = (torch.rand(2, 3, C, size, size) < 0.3).float()
    else:
        x = torch.rand(2, C, size, size) * 2
    return m, x


def model_params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]


def record_spikes(module: torch.nn.Module) -> list:
    """Hook every spiking neuron of ``module``; the returned list collects, per neuron call in
    order, its spikes (also from a neuron called with ``return_state``)."""
    from inflor.neuron import spiking_nodes
    store = []
    for _, node in spiking_nodes(module):
        node.register_forward_hook(lambda mod, inp, out: store.append(out[0] if isinstance(out, tuple) else out))
    return store


def per_neuron(store: list, n_neurons: int) -> list:
    """Calls recorded step by step (neuron 1..n, then again) regrouped per neuron over time."""
    return [torch.cat(store[i::n_neurons]) for i in range(n_neurons)]
