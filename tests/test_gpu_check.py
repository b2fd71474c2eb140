"""benchmarks/gpu_check.py: its comparison functions fail on broken results (so the check itself
can fail), and its CPU quick mode runs end to end with every correctness check passing."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


gc = _load()


def _grads(seed=0, shape=(4, 6, 5)):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return g, torch.ones(shape[1] * shape[2], dtype=torch.bool)


# ------------------------------------------------------------------------------ gradients
def test_a_zero_gradient_where_the_reference_is_nonzero_fails():
    """The SpikingJelly PR #660 failure: a surrogate returning zero gradients."""
    g_ref, keep = _grads()
    res = gc.compare_gradients(torch.zeros_like(g_ref), g_ref, keep, "float32")
    assert not res["ok"]
    assert res["zero_where_ref_nonzero"] == int((g_ref.abs() > res["atol"]).sum()) > 0


def test_zero_gradients_in_a_few_places_are_caught_in_every_dtype():
    g_ref, keep = _grads(1)
    for dtype in gc.DTYPES:
        fused = g_ref.to(gc.DTYPES[dtype]).clone()
        fused[2, 3, 1] = 0.0
        res = gc.compare_gradients(fused, g_ref, keep, dtype)
        assert not res["ok"] and res["zero_where_ref_nonzero"] == 1, dtype


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_one_ulp_of_a_half_dtype_passes_three_fail(dtype):
    """The fused gradient is rounded to the input's dtype once: a rounding the other way (one
    ulp) is within tolerance, three ulps are not."""
    g_ref, keep = _grads(2)
    g_ref = g_ref.sign() * (g_ref.abs() + 0.5)          # away from 0: the relative part decides
    same = g_ref.to(gc.DTYPES[dtype])
    bits = same.view(torch.int16)                       # sign-magnitude: +n is n ulps further out
    assert gc.compare_gradients(same, g_ref, keep, dtype)["ok"]
    assert gc.compare_gradients((bits + 1).view(same.dtype), g_ref, keep, dtype)["ok"]
    assert not gc.compare_gradients((bits + 3).view(same.dtype), g_ref, keep, dtype)["ok"]


def test_float32_gradients_within_1e4_pass():
    g_ref, keep = _grads(2)
    assert gc.compare_gradients(g_ref * (1 + 5e-5), g_ref, keep, "float32")["ok"]
    assert not gc.compare_gradients(g_ref * (1 + 1e-3), g_ref, keep, "float32")["ok"]


def test_a_gradient_off_by_a_percent_fails():
    g_ref, keep = _grads(3)
    res = gc.compare_gradients(g_ref * 1.02, g_ref, keep, "bfloat16")
    assert not res["ok"] and res["out_of_tolerance"] > 0 and res["zero_where_ref_nonzero"] == 0


def test_excluded_neurons_are_not_compared_and_an_all_zero_reference_fails():
    g_ref, keep = _grads(4)
    broken = g_ref.clone()
    broken[:, 0, 0] += 5.0                 # neuron 0 of the flattened [6·5]
    keep[0] = False
    assert gc.compare_gradients(broken, g_ref, keep, "float32")["ok"]
    keep[0] = True
    assert not gc.compare_gradients(broken, g_ref, keep, "float32")["ok"]
    zero = torch.zeros_like(g_ref)
    assert not gc.compare_gradients(zero, zero, keep, "float32")["ok"], "nothing was checked"


# --------------------------------------------------------------------------------- spikes
def _trains():
    """Two neurons over T = 3 and their fire margins z = φ(H) − V_th."""
    o = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    z = torch.tensor([[0.3, -0.2], [-0.4, 0.1], [0.2, -0.3]])
    return o, z


def test_spikes_that_differ_only_after_a_tie_pass():
    o_ref, z_ref = _trains()
    z_ref[1, 1] = 3e-6                       # neuron 1 sits on its threshold at t = 1
    o_fused, z_fused = o_ref.clone(), z_ref.clone()
    o_fused[1, 1], z_fused[1, 1] = 0.0, -3e-6     # the fused side rounded below it
    o_fused[2, 1], z_fused[2, 1] = 1.0, 0.4       # and its membrane went on from there
    res = gc.compare_spikes(o_fused, o_ref, z_ref, z_fused)
    assert res["ok"] and res["neurons_diverged_at_ties"] == 1 and res["unexplained"] == 0
    assert res["diverged"].tolist() == [False, True]


def test_spikes_that_differ_away_from_a_tie_fail():
    o_ref, z_ref = _trains()
    o_fused = o_ref.clone()
    o_fused[0, 0] = 0.0                      # z = 0.3: no tie
    res = gc.compare_spikes(o_fused, o_ref, z_ref, z_ref)
    assert not res["ok"] and res["unexplained"] == 1


def test_fused_spikes_must_agree_with_their_own_membrane():
    o_ref, z_ref = _trains()
    z_fused = z_ref.clone()
    z_fused[2, 0] = -0.5                     # its membrane says no spike, the train says spike
    res = gc.compare_spikes(o_ref, o_ref, z_ref, z_fused)
    assert not res["ok"] and res["fused_inconsistent"] == 1


def test_all_or_no_spikes_is_a_degenerate_input():
    o = torch.ones(3, 4)
    z = torch.full((3, 4), 0.5)
    assert not gc.compare_spikes(o, o, z, z)["ok"]


# ----------------------------------------------------------------------------- statistics
def _stats(seed=0, C=6):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(8, 4, C, 5, generator=gen, dtype=torch.float64)
    o = (h > 0.5).double()
    st = {"h_sum": gc.channel_sums(h), "h_sqsum": gc.channel_sums(h * h),
          "x_sum": h.sum().reshape(1), "o_sum": o.sum().reshape(1)}
    scales = {"h_sum": gc.channel_abs_sums(h), "h_sqsum": gc.channel_sums(h * h),
              "x_sum": h.abs().sum().reshape(1), "o_sum": o.sum().reshape(1)}
    allow = {k: torch.zeros_like(v) for k, v in st.items()}
    return st, scales, allow


def test_statistics_rounded_to_bfloat16_fail_float32_ones_pass():
    st, scales, allow = _stats()
    f32 = {k: v.float().double() for k, v in st.items()}
    assert gc.compare_stats(f32, st, scales, allow)["ok"]
    bf16 = {k: v.to(torch.bfloat16).double() for k, v in st.items()}
    res = gc.compare_stats(bf16, st, scales, allow)
    assert not res["ok"] and not res["h_sqsum"]["ok"]


def test_overflowed_statistics_fail_and_ties_widen_only_their_own_allowance():
    st, scales, allow = _stats(1)
    inf = dict(st, h_sqsum=torch.full_like(st["h_sqsum"], float("inf")))
    assert not gc.compare_stats(inf, st, scales, allow)["ok"]
    off = dict(st, o_sum=st["o_sum"] + 2)            # two spikes more, at ties
    assert not gc.compare_stats(off, st, scales, allow)["ok"]
    allow["o_sum"] = torch.full_like(allow["o_sum"], 2.0)
    assert gc.compare_stats(off, st, scales, allow)["ok"]


def test_channel_sums_are_per_channel():
    v = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    assert torch.equal(gc.channel_sums(v), v.sum((0, 1, 3)))
    assert torch.equal(gc.channel_abs_sums(-v), v.sum((0, 1, 3)))
    assert torch.equal(gc.channel_sums(v[:, :, 0, 0]), v[:, :, 0, 0].sum().reshape(1))


# ---------------------------------------------------------------------- cases and fallback
def test_quick_cases_cover_every_surrogate_dtype_and_variant():
    assert gc.coverage(gc.case_list(quick=True)) == {"surrogates": [], "dtypes": [], "variants": []}
    full = gc.case_list(quick=False)
    assert len(full) == len(set(full)) == len(gc.SURROGATES) * len(gc.DTYPES) * len(gc.VARIANTS)
    assert set(gc.case_list(quick=True)) <= set(full)
    missing = gc.coverage([c for c in gc.case_list(quick=True) if c[0] != "atan"])
    assert missing["surrogates"] == ["atan"]


def test_a_silent_fallback_to_the_reference_is_reported():
    """What the reference keeps for backward (several tensors per step) is what a fused backend
    that silently fell back would keep: the check fails on it."""
    node = gc.build_node("rectangle", "mpr", "reference", "cpu")
    x = torch.randn(4, 2, 3, 4, 4)
    run = gc.run_node(node, x, torch.randn_like(x))
    res = gc.fused_ran(run, x)
    assert not res["ok"] and res["saved_bytes"] > 1.5 * res["input_bytes"]


def test_membrane_trace_follows_the_reference_spikes():
    """The float64 membrane rebuilt from the reference's own spikes fires exactly where they do."""
    for variant in gc.VARIANTS:
        node = gc.build_node("sigmoid", variant, "reference", "cpu")
        x = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.3
        spikes = node(x)
        z = gc.fire_margin(gc.membrane_trace(x, spikes, node), node)
        assert torch.equal((z >= 0).float(), spikes), variant


def test_edge_mask_marks_window_edges_not_smooth_points():
    node = gc.build_node("rectangle", "detach_reset", "reference", "cpu")   # window |H − ½| < ½
    h = torch.tensor([0.0, 1.0, 0.5, 0.3, 1.0 + 1e-3], dtype=torch.float64)
    assert gc.edge_mask(h, node).tolist() == [True, True, False, False, False]
    smooth = gc.build_node("sigmoid", "detach_reset", "reference", "cpu")
    assert not gc.edge_mask(torch.linspace(-2, 3, 101, dtype=torch.float64), smooth).any()


# ------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_quick_cpu_check_passes(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert (tmp_path / "gpu_check.md").read_text().startswith("# inflor GPU check")
    for part in gc.PARTS:
        assert part in res and "error" not in res[part], part
    assert res["meta"]["device"] == "cpu" and res["meta"]["torch"] == torch.__version__
    assert res["passed"] and res["failures"] == []
    n = res["neuron_checks"]
    assert n["missing"] == {"surrogates": [], "dtypes": [], "variants": []}
    assert all(c["ok"] for c in n["cases"]) and len(n["cases"]) == len(gc.QUICK_CASES)
    assert all(c["checks"]["fused_kernels_ran"]["ok"] for c in n["cases"])
    assert any("stats" in c["checks"] for c in n["cases"])
    for part in ("resnet19_step", "cifarnet_training"):
        assert all(v["ok"] for v in res[part]["checks"].values()), part
    assert all(r["median_ms"] > 0 for rows in res["neuron_timing"]["by"].values() for r in rows.values()
               if "median_ms" in r)
