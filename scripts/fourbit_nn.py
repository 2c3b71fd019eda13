"""A small NumPy network library whose GEMMs run through the bit-exact golden model.

Used by ``scripts/study.py``. A :class:`GemmLayer` computes ``z = x @ W + b`` in one of three
precisions:

- ``"fp32"``: NumPy float32, ReLU activations (the baseline);
- ``"fp16"``: operands rounded to binary16, products summed by NumPy in float32, result
  rounded to binary16 (the "first and last layers in fp16" ablation);
- ``"4bit"``: the paper's recipe, every step through ``golden``:

  * forward: SAWB ``int4_sym`` weights (``s_w = 7/alpha``, ``alpha = 12.68*sqrt(E[w^2]) -
    12.80*E[|w|]``) and PACT ``uint4`` input activations (``s_x = 15/alpha``, ``alpha``
    learned), both quantized by ``golden.rescale`` with the scale rounded to an fp16 code;
    ``golden.gemm(mode="forward")`` gives fp16 codes of the integer sums, dequantized by
    ``1 / (s_w * s_x)``;
  * backward: the output gradient ``dY`` (rounded to fp16) goes to radix-4 fp4 by
    ``golden.to_fp4`` with the layer's GradScale exponent ``g``; with TPR the even copy feeds
    ``dW = X^T dY`` (computed as ``(dY^T X)^T``, the fp4 operand first) and the odd copy
    ``dX = dY W^T``; both are ``golden.gemm(mode="backward")``, fp16 codes out;
  * GradScale: ``golden.gradscale``, the golden twin of the hardware range tracker, on
    ``max|dY|`` as the tracker reports it (:func:`tracker_max`, an fp16 code). The paper rule
    (``m = max|dY| * 2^g``; ``m > 64 -> g - 1``, ``m <= 32 -> g + 1``) is applied from the
    next iteration on (the tracker sees ``max|dY|`` while the tensor streams through); ``g``
    starts with the ``direct`` rule on the first batch (from ``g = 0``, which an all-zero
    first gradient keeps). ``g`` is not clamped to a register's range.

An fp16 GEMM result that overflows (Inf, or NaN from Inf - Inf) is saturated to +-65504
(NaN to 0) and counted in :attr:`GemmLayer.overflows`.

Master weights, biases, PACT clips, the loss and the optimizer are float32/float64 NumPy.

Backend: every 4-bit operation above (``rescale``, ``to_fp4``, ``from_fp4``, ``gemm``, the
tracker's ``max|dY|`` and ``gradscale``) goes through the current backend:
:class:`GoldenBackend` (the golden model, the default) or any object with the same methods,
for example ``verif/engine_driver.RTLBackend``, which computes them on the simulated training
engine (``make train-rtl``). :func:`use_backend` switches it for a block of code.
"""

from contextlib import contextmanager

import numpy as np

import golden
from golden.formats import FLAG_SATURATED, FP16, G_BITS_MIN
from golden.fp16 import is_nan

SAWB_C1, SAWB_C2 = 12.68, 12.80          # SAWB coefficients for 4 bits (Sun et al. 2020)
FP16_MAX = 65504.0
G_LIMITS = (-(1 << (G_BITS_MIN - 1)), (1 << (G_BITS_MIN - 1)) - 1)     # -32 .. 31


# ---------------------------------------------------------------------------- quantizers
def fp16_scale(s):
    """A scale rounded to an fp16 code (``golden.rescale`` takes fp16 scales): (code, value)."""
    code = golden.fp16_from_float(np.float64(s))
    return code, float(golden.fp16_to_float(code))


def sawb_alpha(w):
    """SAWB clip for 4-bit weights; falls back to ``max|w|`` if the fit is not positive."""
    a = SAWB_C1 * np.sqrt(np.mean(np.square(w))) - SAWB_C2 * np.mean(np.abs(w))
    if not np.isfinite(a) or a <= 0:
        a = float(np.max(np.abs(w))) or 1.0
    return float(a)


def quantize_weights(w):
    """SAWB int4_sym codes (uint8, two's complement nibbles) and the fp16 scale value."""
    s_code, s = fp16_scale(7.0 / sawb_alpha(w))
    return _backend.rescale(golden.fp16_from_float(w), s_code, "int4_sym"), s


def quantize_activations(z, alpha):
    """PACT uint4: ``clip(z, 0, alpha)`` quantized with ``s = 15/alpha`` by golden.rescale
    (its clamp to [0, 15] is the clip). Returns codes and the fp16 scale value."""
    s_code, s = fp16_scale(15.0 / alpha)
    return _backend.rescale(golden.fp16_from_float(z), s_code, "uint4"), s


def tracker_max(dy16):
    """``max|dY|`` as the range tracker reports it to GradScale: the fp16 code of the largest
    magnitude, sign cleared (magnitudes order like their codes). NaN is left out and Inf
    counts; a tensor of zeros and NaNs gives 0."""
    mag = np.asarray(dy16, np.uint16) & ~np.uint16(FP16.SIGN_MASK)
    return np.uint16(np.max(np.where(is_nan(mag), 0, mag), initial=0))


class GoldenBackend:
    """The default backend: the golden model's functions (and :func:`tracker_max`)."""

    gemm = staticmethod(golden.gemm)
    rescale = staticmethod(golden.rescale)
    to_fp4 = staticmethod(golden.to_fp4)
    from_fp4 = staticmethod(golden.from_fp4)
    gradscale = staticmethod(golden.gradscale)
    tracker_max = staticmethod(tracker_max)


_backend = GoldenBackend()


def backend():
    """The backend the 4-bit layers use now."""
    return _backend


@contextmanager
def use_backend(b):
    """Run the block with backend ``b`` (an object with :class:`GoldenBackend`'s methods)."""
    global _backend
    saved, _backend = _backend, b
    try:
        yield b
    finally:
        _backend = saved


def gradscale(max_code, g, rule):
    """``golden.gradscale`` for one tensor, as a Python int in :data:`G_LIMITS`."""
    return int(_backend.gradscale(max_code, g, rule, g_min=G_LIMITS[0], g_max=G_LIMITS[1]))


def radix2_fp4_split(dy16, g):
    """ABLATION ONLY (not part of the golden API): a radix-2 fp4 quantizer with the same 4
    bits (sign + 3-bit exponent, levels 0 and +-2^j for j = 0..6 at scale 2^-g, nearest level
    in the linear domain, ties to the smaller magnitude, saturating at 64).

    The golden gemm only multiplies radix-4 codes, so the result is split exactly into two
    radix-4 tensors: even powers 2^(2i) = 4^i (phase even) and odd powers 2^(2i+1) = 2 * 4^i
    (phase odd). Returns ``(even_codes, odd_codes)``; the caller runs one golden GEMM per part
    and adds the two fp16 results with golden.fp16_add (one extra fp16 rounding).
    """
    y = np.abs(golden.fp16_to_float(dy16)) * 2.0 ** g
    mids = 0.75 * 2.0 ** np.arange(0, 7)      # 0.75, 1.5, 3, ..., 48: between 2^(j-1), 2^j
    mids[0] = 0.5                             # between 0 and 2^0
    idx = np.searchsorted(mids, y, side="left")   # 0: zero; 1..7: level 2^(idx-1)
    j = idx - 1
    sign = ((np.asarray(dy16, np.int64) >> 15) & 1) << 3
    e = (np.maximum(j, 0) // 2 + 4)
    even = np.where((idx > 0) & (j % 2 == 0), sign | e, 0).astype(np.uint8)
    odd = np.where((idx > 0) & (j % 2 == 1), sign | e, 0).astype(np.uint8)
    return even, odd


# ---------------------------------------------------------------------------- layers
def _fp16_out(code):
    """fp16 GEMM codes -> float64, saturating Inf to +-65504 and NaN to 0; (values, count)."""
    bad = (np.asarray(code) & FP16.EXP_MASK) == FP16.EXP_MASK
    v = golden.fp16_to_float(code)
    n = int(np.count_nonzero(bad))
    if n:
        v = np.where(np.isnan(v), 0.0, np.clip(v, -FP16_MAX, FP16_MAX))
    return v, n


def _f16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


class Recipe:
    """Which parts of the 4-bit recipe are on (the study's configurations)."""

    def __init__(self, tpr=True, gradscale=True, fixed_g=6, radix2=False,
                 accumulator="fp16", fp16_first_last=False, quantize=True):
        self.tpr, self.gradscale, self.fixed_g = tpr, gradscale, fixed_g
        self.radix2, self.accumulator = radix2, accumulator
        self.fp16_first_last, self.quantize = fp16_first_last, quantize


class GemmLayer:
    """``z = x @ W + b`` in ``prec`` (``"fp32"``, ``"fp16"``, ``"4bit"``), see module doc.

    ``pact`` says whether this layer's input is a learned-clip activation (every layer but
    the first, whose input is the image in [0, 1], quantized with the fixed clip 1).
    """

    def __init__(self, k, n, rng, prec, recipe, pact):
        self.w = (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32)
        self.b = np.zeros(n, np.float32)
        self.alpha = np.float32(0.0)             # PACT clip, set from the first batch
        self.prec, self.recipe, self.pact = prec, recipe, pact
        self.g = None
        self.overflows = 0
        self.grad_elems = 0                      # non-zero fp16 gradient elements seen ...
        self.grad_flushed = 0                    # ... how many became fp4 zero (even copy)
        self.grad_saturated = 0                  # ... and how many saturated (even copy)
        # Per phase copy ("even", "odd"): sums of (quantized - exact) and of |exact| over
        # the gradient elements, for the relative bias of that copy (not for radix2).
        self.bias_sum = {"even": 0.0, "odd": 0.0}
        self.abs_sum = {"even": 0.0, "odd": 0.0}
        self.g_trace = []

    # -- input activation (belongs to the consuming layer: its precision decides) --------
    def activation(self, z, train):
        """Returns the GEMM input (codes for 4bit, floats otherwise) and its scale."""
        if self.prec != "4bit":
            if self.pact:
                self._relu_mask = z > 0
            y = np.maximum(z, 0.0) if self.pact else z
            return (_f16(y) if self.prec == "fp16" else y.astype(np.float32)), None
        if not self.pact:
            return quantize_activations(z, 1.0)
        if train and self.alpha == 0.0:          # PACT clip initialised from the data
            pos = z[z > 0]
            self.alpha = np.float32(np.percentile(pos, 99.5) if pos.size else 1.0)
        codes, s = quantize_activations(z, float(self.alpha))
        self._act_cache = (z, 15.0 / s)          # the effective clip of the fp16 scale
        return codes, s

    def activation_backward(self, dy):
        """STE through ReLU / PACT; accumulates the PACT clip gradient."""
        if self.prec != "4bit":
            return dy * (self._relu_mask if self.pact else 1.0)
        z, clip = self._act_cache
        self.dalpha = np.float32(np.sum(dy[z >= clip]))
        return dy * ((z > 0) & (z < clip))

    def _bias(self, exact, codes, copy, phase):
        """Adds the decoded fp4 copy's error against the fp16 gradient values ``exact``
        (finite ones only) to the bias sums."""
        q = golden.fp16_to_float(_backend.from_fp4(codes, self.g, phase))
        ok = np.isfinite(exact)
        self.bias_sum[copy] += float(np.sum((q - exact)[ok]))
        self.abs_sum[copy] += float(np.sum(np.abs(exact[ok])))

    def diagnostics(self):
        """Per-layer gradient statistics (None where the layer is not 4-bit)."""
        if self.prec != "4bit" or not self.grad_elems:
            return None
        return {
            "flushed_frac": self.grad_flushed / self.grad_elems,
            "saturated_frac": (None if self.recipe.radix2
                               else self.grad_saturated / self.grad_elems),
            "rel_bias": {c: (self.bias_sum[c] / self.abs_sum[c]
                             if self.abs_sum[c] and not self.recipe.radix2 else None)
                         for c in ("even", "odd")},
            "g_min": min(self.g_trace), "g_max": max(self.g_trace), "g_final": self.g,
        }

    # -- GEMM ------------------------------------------------------------------------------
    def forward(self, x, s_x):
        if self.prec == "fp32":
            self._x = x
            return x @ self.w + self.b
        if self.prec == "fp16":
            self._x = x
            self._w16 = _f16(self.w)
            return _f16(x @ self._w16) + self.b
        wc, s_w = quantize_weights(self.w)
        out = _backend.gemm(x, wc, mode="forward", a_signed=False, b_signed=True,
                          accumulator=self.recipe.accumulator)
        v, n = _fp16_out(out)
        self.overflows += n
        self._x, self._sx, self._wc, self._sw = x, s_x, wc, s_w
        return (v / (s_w * s_x)).astype(np.float32) + self.b

    def backward(self, dz, need_dx=True):
        """Sets ``self.dw``, ``self.db``; returns dX (float32) or None."""
        self.db = dz.sum(axis=0)
        if self.prec == "fp32":
            self.dw = self._x.T @ dz
            return dz @ self.w.T if need_dx else None
        if self.prec == "fp16":
            d16 = _f16(dz)
            self.dw = _f16(self._x.T @ d16)
            return _f16(d16 @ self._w16.T) if need_dx else None
        return self._backward_4bit(dz, need_dx)

    def _bgemm(self, a, b, b_signed, phase):
        out = _backend.gemm(a, b, mode="backward", b_signed=b_signed, phase=phase, g=self.g,
                          accumulator=self.recipe.accumulator)
        return out

    def _backward_4bit(self, dz, need_dx):
        r = self.recipe
        dy16 = golden.fp16_from_float(dz)
        max_code = _backend.tracker_max(dy16)
        if self.g is None:
            self.g = gradscale(max_code, 0, "direct") if r.gradscale else r.fixed_g
        wt = np.ascontiguousarray(self._wc.T)
        if r.radix2:
            ev, od = radix2_fp4_split(dy16, self.g)
            even_for_stats = (ev | od)
            dwt = golden.fp16_add(self._bgemm(np.ascontiguousarray(ev.T), self._x, False, "even"),
                                  self._bgemm(np.ascontiguousarray(od.T), self._x, False, "odd"))
            dx = (golden.fp16_add(self._bgemm(ev, wt, True, "even"),
                                  self._bgemm(od, wt, True, "odd")) if need_dx else None)
        else:
            even, flags = _backend.to_fp4(dy16, self.g, "even", flags=True)
            odd = _backend.to_fp4(dy16, self.g, "odd") if r.tpr else even
            even_for_stats = even
            self.grad_saturated += int(np.count_nonzero(flags & FLAG_SATURATED))
            exact = golden.fp16_to_float(dy16)
            self._bias(exact, even, "even", "even")
            self._bias(exact, odd, "odd", "odd" if r.tpr else "even")
            dwt = self._bgemm(np.ascontiguousarray(even.T), self._x, False, "even")
            dx = (self._bgemm(odd, wt, True, "odd" if r.tpr else "even")
                  if need_dx else None)
        nz = (dy16 & 0x7FFF) != 0
        self.grad_elems += int(np.count_nonzero(nz))
        self.grad_flushed += int(np.count_nonzero(nz & ((even_for_stats & 0x7) == 0)))
        v, n = _fp16_out(dwt)
        self.overflows += n
        self.dw = (v.T / self._sx).astype(np.float32)
        if r.gradscale:
            self.g = gradscale(max_code, self.g, "paper")
        self.g_trace.append(self.g)
        if dx is None:
            return None
        v, n = _fp16_out(dx)
        self.overflows += n
        return (v / self._sw).astype(np.float32)


# ---------------------------------------------------------------------------- conv helpers
def im2col3(x):
    """(B, H, W, C) -> (B*H*W, 9*C) patches of a 3x3, stride-1, zero-padded convolution,
    ordered (row offset, column offset, channel). Works on codes (pad = code 0) and floats."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = [xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)]
    return np.concatenate(cols, axis=3).reshape(b * h * w, 9 * c)


def col2im3(d, shape):
    """Adjoint of :func:`im2col3`: (B*H*W, 9*C) gradients -> (B, H, W, C)."""
    b, h, w, c = shape
    d = d.reshape(b, h, w, 9, c)
    out = np.zeros((b, h + 2, w + 2, c), d.dtype)
    for n, (i, j) in enumerate((i, j) for i in range(3) for j in range(3)):
        out[:, i:i + h, j:j + w, :] += d[:, :, :, n, :]
    return out[:, 1:-1, 1:-1, :]


def maxpool2(x):
    """2x2 max pool of (B, H, W, C); returns the output and the argmax (one winner per
    window, also when quantized values tie)."""
    b, h, w, c = x.shape
    r = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
    r = r.reshape(b, h // 2, w // 2, c, 4)
    idx = np.argmax(r, axis=-1)
    return np.take_along_axis(r, idx[..., None], axis=-1)[..., 0], idx


def maxpool2_backward(d, idx):
    b, h2, w2, c = d.shape
    r = np.zeros((b, h2, w2, c, 4), d.dtype)
    np.put_along_axis(r, idx[..., None], d[..., None], axis=-1)
    r = r.reshape(b, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return r.reshape(b, 2 * h2, 2 * w2, c)


# ---------------------------------------------------------------------------- models
def _precisions(recipe, n_layers):
    if not recipe.quantize:
        return ["fp32"] * n_layers
    p = ["4bit"] * n_layers
    if recipe.fp16_first_last:
        p[0] = p[-1] = "fp16"
    return p


class MLP:
    """64 -> 128 -> 64 -> 10, activations ReLU (fp32/fp16) or PACT uint4 (4bit)."""

    sizes = (64, 128, 64, 10)

    def __init__(self, recipe, rng):
        precs = _precisions(recipe, len(self.sizes) - 1)
        self.layers = [GemmLayer(k, n, rng, p, recipe, pact=i > 0)
                       for i, (k, n, p) in enumerate(zip(self.sizes[:-1], self.sizes[1:],
                                                         precs, strict=True))]

    def forward(self, x, train=True):
        h, z = x.reshape(len(x), -1), None
        for layer in self.layers:
            inp, s = layer.activation(h if z is None else z, train)
            z = layer.forward(inp, s)
        return z

    def backward(self, dlogits):
        d = dlogits
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            d = layer.backward(d, need_dx=i > 0)
            if i > 0:
                d = layer.activation_backward(d)


class DeepMLP(MLP):
    """16 -> 64 -> 64 -> 64 -> 64 -> 10: five GEMM layers, no normalisation (the teacher task)."""

    sizes = (16, 64, 64, 64, 64, 10)


class CNN:
    """conv3x3(1->16) - act - pool - conv3x3(16->32) - act - pool - fc(128->10) on 8x8."""

    def __init__(self, recipe, rng):
        precs = _precisions(recipe, 3)
        self.layers = [GemmLayer(9, 16, rng, precs[0], recipe, pact=False),
                       GemmLayer(144, 32, rng, precs[1], recipe, pact=True),
                       GemmLayer(128, 10, rng, precs[2], recipe, pact=True)]

    def forward(self, x, train=True):
        l1, l2, l3 = self.layers
        b = len(x)
        x = x.reshape(b, 8, 8, 1)
        inp, s = l1.activation(x, train)
        z1 = l1.forward(im2col3(inp), s).reshape(b, 8, 8, 16)
        inp, s = l2.activation(z1, train)
        p1, self._i1 = maxpool2(inp)
        z2 = l2.forward(im2col3(p1), s).reshape(b, 4, 4, 32)
        inp, s = l3.activation(z2, train)
        p2, self._i2 = maxpool2(inp)
        return l3.forward(p2.reshape(b, -1), s)

    def backward(self, dlogits):
        l1, l2, l3 = self.layers
        b = len(dlogits)
        d = l3.backward(dlogits).reshape(b, 2, 2, 32)
        d = l3.activation_backward(maxpool2_backward(d, self._i2))
        d = col2im3(l2.backward(d.reshape(b * 16, 32)), (b, 4, 4, 16))
        d = l2.activation_backward(maxpool2_backward(d, self._i1))
        l1.backward(d.reshape(b * 64, 16), need_dx=False)


def cross_entropy(logits, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.mean(np.log(p[np.arange(n), y] + 1e-12))
    d = p.copy()
    d[np.arange(n), y] -= 1.0
    return float(loss), (d / n).astype(np.float32)
