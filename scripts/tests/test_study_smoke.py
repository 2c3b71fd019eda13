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
