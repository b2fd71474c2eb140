"""MACs from shapes, SOPs from measured input rates, energy with overridable constants."""
import pytest
import torch
from torch import nn

from inflor.energy import E_AC_PJ, E_MAC_PJ, EnergyConstants, OpCounter, layer_macs
from inflor.layers import TimeFold, repeat_time


def test_layer_macs_from_shapes():
    conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
    x = torch.zeros(5, 3, 16, 16)
    macs, rows = layer_macs(conv, x, conv(x))
    assert rows == 5 and macs == 5 * 8 * 8 * 8 * 3 * 9
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
    x = torch.zeros(2, 8, 4, 4)
    assert layer_macs(grouped, x, grouped(x)) == (2 * 8 * 16 * 2 * 9, 2)
    fc = nn.Linear(10, 4)
    x = torch.zeros(3, 7, 10)          # [T, B, F] without folding: 21 rows
    assert layer_macs(fc, x, fc(x)) == (21 * 40, 21)


class Net(nn.Module):
    def __init__(self, T=3):
        super().__init__()
        self.T = T
        self.conv1 = TimeFold(nn.Conv2d(1, 4, 3, padding=1))
        self.conv2 = TimeFold(nn.Conv2d(4, 4, 3, padding=1))
        self.fc = TimeFold(nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 2)))

    def forward(self, x):
        h = self.conv1(repeat_time(x, self.T))
        s = (h > 0).float()                 # stand-in spikes
        s2 = (self.conv2(s) > 0.3).float()
        self._rates = (s.mean().item(), s2.mean().item())
        return self.fc(s2)


def test_sops_and_energy():
    torch.manual_seed(0)
    net, T, B = Net(3), 3, 6
    c = OpCounter(net)
    with c, torch.no_grad():
        net(torch.randn(B, 1, 4, 4))
        c.end_batch(B)
    r = c.report()
    L = r["layers"]
    m1, m2, m3 = 4 * 16 * 9, 4 * 16 * 4 * 9, 64 * 2
    assert [L[n]["ann_macs"] for n in ("conv1.module", "conv2.module", "fc.module.1")] == [m1, m2, m3]
    assert L["conv1.module"]["analog_input"] and L["conv1.module"]["sops"] == 0
    assert L["conv1.module"]["snn_macs"] == m1 * T
    assert L["conv2.module"]["input_binary"] and not L["conv1.module"]["input_binary"]
    r1, r2 = net._rates
    assert L["conv2.module"]["sops"] == pytest.approx(m2 * r1 * T)
    assert L["fc.module.1"]["sops"] == pytest.approx(m3 * r2 * T)
    tot = r["total"]
    assert tot["ann_energy_pj"] == pytest.approx(E_MAC_PJ * (m1 + m2 + m3))
    assert tot["snn_energy_pj"] == pytest.approx(E_MAC_PJ * m1 * T + E_AC_PJ * (m2 * r1 + m3 * r2) * T)
    # overridable constants scale the energy, not the counts
    r2_ = c.report(EnergyConstants(e_mac=1.0, e_ac=0.5))
    assert r2_["total"]["sops"] == tot["sops"]
    assert r2_["total"]["snn_energy_pj"] == pytest.approx(m1 * T + 0.5 * (m2 * r1 + m3 * r2) * T)
    assert r2_["constants_pj"] == {"e_mac": 1.0, "e_ac": 0.5}


def test_bad_constants_and_empty_counter():
    with pytest.raises(ValueError, match="must be > 0"):
        EnergyConstants(e_mac=0)
    with pytest.raises(ValueError, match="no forward pass"):
        OpCounter(Net()).report()
