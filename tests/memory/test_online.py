"""Online training through time: the membrane carried between steps reproduces the full forward,
T = 1 gives full BPTT's gradient, and the memory one step keeps does not depend on T."""
import pytest
import torch

from inflor.models import create_model
from inflor.train.online import online_backward
from tests.helpers.saved import distinct_saved_bytes


def _net(T, **kw):
    torch.manual_seed(0)
    return create_model("tinyconv", num_classes=3, width=3, timesteps=T,
                        neuron_options={"backend": "reference"}, **kw).double()


def ce(y):
    return lambda lg: {"total": torch.nn.functional.cross_entropy(lg.mean(0), y)}


@pytest.mark.parametrize("neuron", ["if", "lif", "aaai", "inflor"])
def test_online_forward_equals_full_forward_without_norm(neuron):
    """With no (T, B) norm nothing differs in the forward: carrying U step by step gives the
    full forward's logits."""
    net = _net(4, norm="none", neuron=neuron)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 3
    full = net(x)
    online, _ = online_backward(net, x, ce(torch.tensor([0, 2])))
    torch.testing.assert_close(online, full.detach(), rtol=1e-12, atol=1e-12)
    assert full.detach().abs().sum() > 0


def test_one_step_online_gradient_is_full_bptt():
    x, y = torch.rand(2, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 2])
    net = _net(1)
    torch.nn.functional.cross_entropy(net(x).mean(0), y).backward()
    full = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    online_backward(net, x, ce(y))
    for a, b in zip(full, [p.grad for p in net.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_online_gradient_is_the_mean_of_per_step_gradients_with_no_cross_time_terms():
    """T = 2, no norm: the online gradient equals ½(∇L(step 0) + ∇L(step 1 with U_0 detached)),
    built here by hand from two one-step networks with an explicit initial membrane."""
    x, y = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 3, torch.tensor([0, 2])
    net = _net(2, norm="none", neuron="if")
    online_backward(net, x, ce(y))
    online = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    one = _net(1, norm="none", neuron="if")
    one.load_state_dict(net.state_dict())
    # step 0 from rest; step 1 with the first conv's input + U_0 (IF: λ = s = 1) at each neuron
    u = {}

    def keep(m, a, o, name):            # IF, hard reset to 0: U_0 = H_0 (1 - O_0), H_0 = X_0
        u[name] = (a[0] * (1 - o)).detach()

    hooks = [n.register_forward_hook(lambda m, a, o, name=name: keep(m, a, o, name))
             for name, n in one.named_modules() if type(n).__name__ == "BaseNode"]
    (torch.nn.functional.cross_entropy(one(x).mean(0), y) / 2).backward()
    for h in hooks:
        h.remove()
    pre = [n.register_forward_pre_hook(lambda m, a, name=name: (a[0] + u[name],))
           for name, n in one.named_modules() if type(n).__name__ == "BaseNode"]
    (torch.nn.functional.cross_entropy(one(x).mean(0), y) / 2).backward()
    for h in pre:
        h.remove()
    for a, b in zip(online, [p.grad for p in one.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _max_step_saved_bytes(T):
    net = create_model("tinyconv", num_classes=3, width=4, timesteps=T)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    per_step, cur = [], {}

    def pack(t):
        s = t.untyped_storage()
        cur[s.data_ptr()] = s.nbytes()
        return t

    def loss(lg):
        per_step.append(sum(cur.values()))
        cur.clear()
        return ce(y)(lg)

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        online_backward(net, x, loss)
    return max(per_step)


def test_memory_kept_per_step_does_not_grow_with_T():
    """The most one online step keeps is the same at T = 8 and T = 2 (up to small per-call
    tensors whose addresses may coincide), where full BPTT keeps ~4× more at T = 8."""
    m2, m8 = _max_step_saved_bytes(2), _max_step_saved_bytes(8)
    assert abs(m8 - m2) <= 0.01 * m2

    def full(T):
        net = create_model("tinyconv", num_classes=3, width=4, timesteps=T)
        return distinct_saved_bytes(lambda: net(torch.rand(4, 1, 8, 8)).sum())[0]
    assert full(8) > 3 * full(2) > 3 * m2


def test_config_accepts_full_and_online_only():
    from inflor.train.config import ConfigError, load_config
    assert load_config()["train"]["bptt"] == "full"
    assert load_config(None, ["train.bptt=online"])["train"]["bptt"] == "online"
    with pytest.raises(ConfigError, match="bptt"):
        load_config(None, ["train.bptt=truncated"])


def _tiny_run(tmp_path, name, *extra):
    import csv

    from inflor.train import load_config, run_training
    cfg = load_config(None, ["model.options={timesteps: 3, width: 4, neuron: srif, norm: tdbn}", "data.batch_size=32",
                             "train.epochs=1", "train.max_steps_per_epoch=3", "train.progress=none",
                             "train.tensorboard=false", "train.device=cpu", "loss.mpd.weight=0.5", *extra])
    run_training(cfg, tmp_path / name, log=lambda s: None)
    row = list(csv.DictReader(open(tmp_path / name / "metrics.csv")))[-1]
    return {k: float(v) for k, v in row.items() if k.endswith("loss") or k.endswith("acc")}


def test_the_trainer_runs_online_and_it_is_not_full_bptt(tmp_path):
    """train.bptt=online through the trainer's loop (per-step backward, MPD term, grad clipping):
    finite losses, and a different training from full BPTT's with the same seed."""
    import math
    online = _tiny_run(tmp_path, "online", "train.bptt=online", "train.grad_clip=1.0")
    full = _tiny_run(tmp_path, "full", "train.grad_clip=1.0")
    assert all(math.isfinite(v) for v in online.values()) and online["mpd_loss"] > 0
    assert online["train_loss"] != full["train_loss"]


def test_online_with_activation_checkpointing_is_refused():
    from inflor.errors import ConfigError
    from inflor.train import load_config
    with pytest.raises(ConfigError, match="train.bptt=online cannot be combined with train.activation_checkpointing"):
        load_config(None, ["train.bptt=online", "train.activation_checkpointing=[features]"])
