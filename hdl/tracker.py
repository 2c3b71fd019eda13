"""The range tracker: max |x| of each tensor and the GradScale exponent for the next
iteration (docs/numerics.md, "GradScale").

Stage functions (public, for the formal harnesses): :func:`tracker_max`,
:func:`gradscale_step`.
"""

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data

from golden.formats import FP16, GRADSCALE_HI_LOG2, GRADSCALE_LO_LOG2

from .fp16 import Operand, log2_fields
from .params import ScaledStream, clamp, g_range
from .pipeline import Pipeline

__all__ = ["RangeTracker", "tracker_max", "gradscale_step"]


def tracker_max(m, xs):
    """Per beat: the largest non-NaN magnitude (a 15-bit code compares like its value) and
    whether any lane is NaN. A balanced tree of compares."""
    mags, nans = [], []
    for k, x in enumerate(xs):
        op = Operand(x)
        mag = Signal(FP16.MAG_BITS, name=f"mag{k}")
        m.d.comb += mag.eq(Mux(op.nan, 0, x[:FP16.MAG_BITS]))
        mags.append(mag)
        nans.append(op.nan)
    level = 0
    while len(mags) > 1:
        nxt = []
        for j in range(0, len(mags) - 1, 2):
            a, b = mags[j], mags[j + 1]
            mx = Signal(FP16.MAG_BITS, name=f"max{level}_{j // 2}")
            m.d.comb += mx.eq(Mux(a > b, a, b))
            nxt.append(mx)
        if len(mags) % 2:
            nxt.append(mags[-1])
        mags, level = nxt, level + 1
    return {"max": mags[0], "nan": Cat(*nans).any()}


def gradscale_step(m, mx, g, g_bits):
    """The GradScale rules of :func:`golden.gradscale` on a 15-bit magnitude code ``mx``:
    ``(paper, direct)``, both clamped to the range of ``g_bits``."""
    op = Operand(Cat(mx, Const(0, 1)))
    e, frac = log2_fields(m, op)
    pow2 = frac == 0
    zero, inf = op.zero, op.inf
    a = e + g                                         # floor(log2 (max * 2**g))
    over = inf | (~zero & ((a > GRADSCALE_HI_LOG2) | ((a == GRADSCALE_HI_LOG2) & ~pow2)))
    under = zero | (~inf & ((a < GRADSCALE_LO_LOG2) | ((a == GRADSCALE_LO_LOG2) & pow2)))
    lo, hi = g_range(g_bits)
    paper = Signal(hdl.signed(g_bits))
    direct = Signal(hdl.signed(g_bits))
    m.d.comb += [
        paper.eq(clamp(g - over + under, lo, hi)),
        direct.eq(clamp(Mux(zero, g, Mux(inf, g - 1, GRADSCALE_LO_LOG2 - e + pow2)), lo, hi)),
    ]
    return paper, direct


class RangeTracker(ScaledStream):
    """Range tracker (docs/numerics.md, GradScale): the exact ``max|x|`` of each tensor of an
    fp16 stream, whether it held a NaN, and the GradScale exponent for the next iteration.

    A tensor is a run of beats of ``lanes`` values ending with ``last = 1``; one output beat
    follows each tensor. NaN values are left out of the maximum (and raise ``nan``); +-Inf
    counts (``max = 0x7C00``); a tensor of zeros and NaNs has ``max = 0``. ``max`` is the fp16
    code of the largest magnitude (sign cleared): fp16 magnitudes order like their codes, so
    the tracker compares 15-bit codes and never rounds.

    GradScale (:func:`golden.gradscale`, clamped to ``g``'s range): with the ``g`` of the
    ``last`` beat, ``g_paper`` is the paper's one-step rule (``m = max * 2**g``: ``m > 64`` ->
    ``g - 1``; ``m <= 32`` -> ``g + 1``; else ``g``; so ``max = 0`` gives ``g + 1`` and Inf
    ``g - 1``) and ``g_direct`` the ``g`` that puts ``m`` in ``(32, 64]`` in one step (``max = 0``
    keeps ``g``; Inf gives ``g - 1``).

    Latency 3 from the ``last`` beat to the result (lane max | accumulate | GradScale), one
    input beat per cycle, full backpressure; a synchronous reset drops the partial tensor
    and the results in flight (the next beat starts a new tensor).

    Parameters
    ----------
    lanes : int
        Values per beat (default 1).
    g_bits : int
        Width of the signed scale exponent (6 .. 9, default 6: ``-32 .. 31``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(16, lanes),
        "g": signed(g_bits), "last": 1})))``
        fp16 codes; the layer's current ``g`` (read on the ``last`` beat); end of tensor.
    o : ``Out(stream.Signature(StructLayout({"max": 16, "nan": 1, "g_paper": signed(g_bits),
        "g_direct": signed(g_bits)})))``
        One beat per tensor.
    """

    latency = 3

    _name = "range_tracker"

    _ports = staticmethod(lambda n, gs: (
        {"x": data.ArrayLayout(FP16.BITS, n), "g": gs, "last": 1},
        {"max": FP16.BITS, "nan": 1, "g_paper": gs, "g_direct": gs}))

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        beat = Signal()                       # stage 0's beat is valid and moves on
        last0 = Signal()
        # Stage 1 accumulates; only the last beat of a tensor moves on to stage 2.
        pipe = Pipeline(m, self.i, self.o, 3, keep={1: last0})
        s0 = tracker_max(m, [p.x[k] for k in range(self._lanes)])
        s0.update(g=p.g, last=p.last)
        s0 = pipe.rank(0, s0, "beat")
        m.d.comb += last0.eq(s0.last)
        acc_max = Signal(FP16.MAG_BITS)
        acc_nan = Signal()
        cur_max = Mux(acc_max > s0.max, acc_max, s0.max)
        cur_nan = acc_nan | s0.nan
        m.d.comb += beat.eq(pipe.valid[0] & pipe.take[1])
        with m.If(beat):
            m.d.sync += [acc_max.eq(Mux(s0.last, 0, cur_max)),
                         acc_nan.eq(~s0.last & cur_nan)]
        s1 = pipe.rank(1, {"max": cur_max, "nan": cur_nan, "g": s0.g}, "tensor")
        paper, direct = gradscale_step(m, s1.max, s1.g, self._g_bits)
        with m.If(pipe.take[2]):
            m.d.sync += [self.o.payload.max.eq(s1.max), self.o.payload.nan.eq(s1.nan),
                         self.o.payload.g_paper.eq(paper), self.o.payload.g_direct.eq(direct)]
        return m
