"""Smoke tests of the 4-bit training study (scripts/fourbit_nn.py, scripts/study.py): the
quantizers and the GradScale inputs, one layer's 4-bit GEMMs against float arithmetic, and a
few training steps of each model. Fast (a few seconds)."""

import numpy as np
import pytest

import golden
from golden.formats import FP16
from scripts import fourbit_nn as nn
from scripts import study


def test_gradscale_from_the_tracker_max():
    """The study feeds golden.gradscale the range tracker's max|dY| (NaN left out)."""
    for maxabs in (1.0, 1.5, 2.0 ** -20, 0.75, 3e-3, 1000.0):
        dy16 = golden.fp16_from_float(np.array([-maxabs, maxabs / 3, np.nan, 0.0]))
        code = nn.tracker_max(dy16)
        assert code == golden.fp16_from_float(maxabs)
        g = nn.gradscale(code, 0, "direct")
        assert 32 < float(golden.fp16_to_float(code)) * 2.0 ** g <= 64
        assert nn.gradscale(code, g, "paper") == g             # already in (32, 64]
    m = golden.fp16_from_float(np.array([64.5, 64.0, 32.0]))
    assert [nn.gradscale(c, 0, "paper") for c in m] == [-1, 0, 1]
    assert nn.tracker_max(np.array([FP16.QNAN, 0x8000], np.uint16)) == 0
    assert nn.tracker_max(np.array([0x8000 | FP16.INF, 0x3C00], np.uint16)) == FP16.INF
    assert nn.gradscale(np.uint16(0), 5, "direct") == 5        # nothing to aim with: keep g


def test_sawb_and_pact_quantizers():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5000).astype(np.float32) * 0.1
    alpha = nn.sawb_alpha(w)
    assert alpha == pytest.approx(0.1 * (12.68 - 12.80 * np.sqrt(2 / np.pi)), rel=0.05)
    codes, s = nn.quantize_weights(w)
    q = golden.int4_value(codes, True)
    assert q.min() >= -7 and q.max() <= 7
    assert s == float(golden.fp16_to_float(golden.fp16_from_float(7.0 / alpha)))
    np.testing.assert_array_equal(q, np.clip(np.rint(w.astype(np.float16).astype(np.float64)
                                                     * s), -7, 7))
    z = np.array([-1.0, 0.0, 0.1, 0.5, 0.99, 1.0, 7.0])
    c, s = nn.quantize_activations(z, 1.0)
    # fp16(0.1) * 15 = 1.4996 -> 1; 0.5 * 15 = 7.5 -> 8 (ties to even)
    np.testing.assert_array_equal(c, [0, 0, 1, 8, 15, 15, 15])


def test_radix2_split_levels():
    """Ablation quantizer: even + odd radix-4 parts stand for radix-2 levels 2^0 .. 2^6."""
    y = np.array([0.0, 0.5, 0.51, 1.0, 1.5, 1.6, 3.0, 5.0, 24.0, 48.0, 49.0, 64.0, 1e4, -6.5])
    g = 2
    dy16 = golden.fp16_from_float(y * 2.0 ** -g)
    ev, od = nn.radix2_fp4_split(dy16, g)
    assert not np.any((ev & 7) & (od & 7))                     # one part per element
    val = (golden.fp4_value(ev) + 2 * golden.fp4_value(od)) * 2.0 ** -g
    want = np.array([0, 0, 1, 1, 1, 2, 2, 4, 16, 32, 64, 64, 64, -8]) * 2.0 ** -g
    np.testing.assert_array_equal(val, want)


@pytest.mark.parametrize("tpr", [True, False])
def test_4bit_layer_matches_float_reference(tpr):
    """Forward and both backward GEMMs of a 4-bit layer equal the float computation on the
    quantized operands (exact accumulation: one rounding to fp16 per output)."""
    rng = np.random.default_rng(1)
    recipe = nn.Recipe(accumulator="exact", tpr=tpr)
    layer = nn.GemmLayer(24, 6, rng, "4bit", recipe, pact=True)
    z = rng.standard_normal((10, 24)).astype(np.float32)
    x, s_x = layer.activation(z, train=True)
    out = layer.forward(x, s_x)
    wc, s_w = nn.quantize_weights(layer.w)
    xq = golden.int4_value(x, False) / s_x
    wq = golden.int4_value(wc, True) / s_w
    np.testing.assert_allclose(out, xq @ wq, rtol=2e-3, atol=1e-6)
    dz = (rng.standard_normal((10, 6)) * 1e-3).astype(np.float32)
    dx = layer.backward(dz)
    d16 = golden.fp16_from_float(dz)
    g = nn.gradscale(nn.tracker_max(d16), 0, "direct")         # the first batch's g
    even = golden.from_fp4(golden.to_fp4(d16, g, "even"), g, "even")
    odd = golden.from_fp4(golden.to_fp4(d16, g, "odd" if tpr else "even"), g,
                          "odd" if tpr else "even")
    de, do = golden.fp16_to_float(even), golden.fp16_to_float(odd)
    np.testing.assert_allclose(layer.dw, xq.T @ de, rtol=2e-3, atol=1e-9)
    np.testing.assert_allclose(dx, do @ wq.T, rtol=2e-3, atol=1e-9)
    assert layer.overflows == 0


@pytest.mark.parametrize("config", ["4bit", "radix2_fp4", "fp16_first_last", "fp32"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_steps_reduce_loss(config, model):
    xtr, _, ytr, _ = study.load_data()
    xb, yb = xtr[:32], ytr[:32]
    rng = np.random.default_rng(0)
    net = study.MODELS[model](study.CONFIGS[config], rng)
    state, losses = {}, []
    for _ in range(12):                                    # the same batch, over and over
        losses.append(study.train_step(net, xb, yb, 0.05, state))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    for layer in net.layers:
        if layer.prec == "4bit":
            assert layer.g is not None and len(layer.g_trace) == 12
            assert layer.overflows == 0


def test_gradscale_stays_in_the_register_range():
    """A dead layer (max|dY| = 0) raises g every step under the paper rule; it stops at the
    top of the smallest g register instead of leaving the golden model's range."""
    assert nn.G_LIMITS == (-32, 31)
    g = 0
    for _ in range(40):
        g = nn.gradscale(np.uint16(0), g, "paper")
    assert g == 31
    assert nn.gradscale(golden.fp16_from_float(60000.0), 31, "paper") == 30   # and back


def test_paired_ci():
    m, lo, hi = study.paired_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)                      # t(0.975, 2) * sd / sqrt(n)
    assert m == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert study.paired_ci([0.5]) == [0.5, None, None]


def test_task_summary_pairs_by_seed_and_model():
    runs = [{"task": "t", "config": c, "model": "m", "seed": s, "test_acc": acc,
             "layer_diagnostics": [None]}
            for s, (full, abl) in enumerate([(80.0, 70.0), (81.0, 72.0), (79.0, 69.5)])
            for c, acc in (("4bit", full), ("naive", abl))]
    ts = study.task_summary(runs, "t", ["4bit", "naive"], ["m"])
    assert ts["4bit"] == 80.0 and ts["naive"] == pytest.approx(70.5) and ts["fp32"] is None
    m, lo, hi = ts["paired_ci"]["naive"]
    assert m == pytest.approx(9.5) and lo > 0 and hi > m
    assert "4bit" not in ts["paired_ci"] and ts["diagnostics"] == {}


def test_teacher_task():
    xtr, xte, ytr, yte = study.load_teacher()
    hp = study.TEACHER_HPARAMS
    assert xtr.shape == (hp["n"] * 3 // 4, hp["inputs"]) and len(xte) == hp["n"] // 4
    assert len(ytr) == len(xtr) and len(yte) == len(xte)
    # Inputs sit on the uint4 grid: the first layer's quantization (clip 1) is exact.
    codes, _ = nn.quantize_activations(xtr[:500], 1.0)
    np.testing.assert_array_equal(codes, np.rint(xtr[:500] * 15))
    counts = np.bincount(np.concatenate([ytr, yte]), minlength=hp["classes"])
    assert counts.min() > 0.05 * hp["n"]                       # about equal classes
    again = study.load_teacher()
    np.testing.assert_array_equal(again[0], xtr)               # generated, reproducibly


@pytest.mark.parametrize("config", ["4bit", "naive", "no_tpr"])
def test_deep_mlp_steps_and_diagnostics(config):
    xtr, _, ytr, _ = study.load_teacher()
    rng = np.random.default_rng(0)
    net = study.MODELS["deep_mlp"](study.CONFIGS[config], rng)
    assert [la.w.shape for la in net.layers][0] == (16, 64) and len(net.layers) == 5
    state, losses = {}, []
    for _ in range(12):
        losses.append(study.train_step(net, xtr[:64], ytr[:64], 0.05, state,
                                       study.TEACHER_HPARAMS))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    for layer in net.layers:
        d = layer.diagnostics()
        assert 0 <= d["flushed_frac"] <= 1 and d["g_min"] <= d["g_final"] <= d["g_max"]
        if config == "naive":                                  # radix-2: no phases to compare
            assert d["saturated_frac"] is None and d["rel_bias"]["even"] is None
            assert d["g_min"] == d["g_max"] == 6               # fixed g
        else:
            assert 0 <= d["saturated_frac"] <= 1
            assert abs(d["rel_bias"]["even"]) < 1 and abs(d["rel_bias"]["odd"]) < 1
            if config == "no_tpr":
                assert d["rel_bias"]["odd"] == d["rel_bias"]["even"]


def test_study_cli_runs_both_tasks(tmp_path):
    """The whole flow on one epoch, one seed, two configurations (two worker processes)."""
    import json
    study.main(["--epochs", "1", "--seeds", "2", "--configs", "fp32,4bit",
                "--models", "mlp,deep_mlp", "--out", str(tmp_path)])
    rep = json.loads((tmp_path / "study.json").read_text())
    assert set(rep["tasks"]) == {"digits", "teacher"} and "summary" in rep
    t = rep["tasks"]["teacher"]
    assert t["metric"] and t["fp32"] is not None and t["4bit"] is not None
    assert t["paired_ci"]["fp32"][1] is not None and len(rep["runs"]) == 8
    assert (tmp_path / "study.md").read_text().count("## Task `teacher`") == 1
    assert (tmp_path / "study_curves.png").exists()
