"""The range tracker: max |x| of each tensor and the GradScale exponent for the next
iteration (docs/numerics.md, "GradScale").

Stage functions (public, for the formal harnesses): :func:`tracker_max`,
:func:`gradscale_step`; each takes a ``cut`` for its register points
(:func:`hdl.rescale.point_cut`): ranks in the unit, wires in a harness.
"""

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data

from golden.formats import FP16, GRADSCALE_HI_LOG2, GRADSCALE_LO_LOG2

from .fp16 import Operand
from .params import ScaledStream, clamp, g_range
from .pipeline import Pipeline
from .rescale import point_cut
from .rounder import normalize

__all__ = ["RangeTracker", "tracker_max", "gradscale_step", "tree_levels"]


def tree_levels(lanes):
    """Levels of :func:`tracker_max`'s compare tree for ``lanes`` values."""
    return (lanes - 1).bit_length()


def tracker_max(m, xs, cut=None, carry=None):
    """Per beat: the largest non-NaN magnitude (a 15-bit code compares like its value) and
    whether any lane is NaN. A balanced tree of compares. Register points (``cut``, see
    :func:`hdl.rescale.point_cut`; default: none): ``mask`` (NaNs zeroed), then ``max1``,
    ``max2``, ... after each level of the tree (:func:`tree_levels`). ``carry``: values
    riding along. Returns a dict: ``max``, ``nan``, then ``carry``."""
    cut = cut or point_cut(m)
    carry = dict(carry or {})
    mags, nans = [], []
    for k, x in enumerate(xs):
        op = Operand(x)
        mag = Signal(FP16.MAG_BITS, name=f"mag{k}")
        m.d.comb += mag.eq(Mux(op.nan, 0, x[:FP16.MAG_BITS]))
        mags.append(mag)
        nans.append(op.nan)
    level = 0
    name = "mask"
    while True:
        d = cut(name, {**{f"m{j}": v for j, v in enumerate(mags)},
                       **{f"n{j}": v for j, v in enumerate(nans)}, **carry})
        mags = [d[f"m{j}"] for j in range(len(mags))]
        nans = [d[f"n{j}"] for j in range(len(nans))]
        carry = {key: d[key] for key in carry}
        if len(mags) == 1:
            break
        nxt, nxt_nan = [], []
        for j in range(0, len(mags) - 1, 2):
            a, b = mags[j], mags[j + 1]
            mx = Signal(FP16.MAG_BITS, name=f"max{level}_{j // 2}")
            m.d.comb += mx.eq(Mux(a > b, a, b))
            nxt.append(mx)
            nxt_nan.append(nans[j] | nans[j + 1])
        if len(mags) % 2:
            nxt.append(mags[-1])
            nxt_nan.append(nans[-1])
        mags, nans, level = nxt, nxt_nan, level + 1
        name = f"max{level}"
    return {"max": mags[0], "nan": nans[0], **carry}


def gradscale_step(m, mx, g, g_bits, cut=None, carry=None):
    """The GradScale rules of :func:`golden.gradscale` on a 15-bit magnitude code ``mx``:
    ``(paper, direct)``, both clamped to the range of ``g_bits``.

    ``e = floor(log2 mx)`` by the shared :func:`hdl.rounder.normalize` and ``a = e + g``;
    ``over`` (``a`` past 64) and ``under`` (``a`` at most 32) are exclusive, so the paper rule
    is a select of ``g - 1``, ``g + 1`` and ``g`` (clamped beforehand). Register points
    (``cut``; default: none): ``gs_hi`` (after the normalize shifts by 8 and 4; ``g -+ 1``
    clamped), ``gs_lo`` (by 2 and 1; ``exp - 15`` and ``exp - 15 + g`` beside them),
    ``gs_e`` (``e``, ``a``), ``gs_cmp`` (``over``, ``under``, ``5 - e + pow2``). ``carry``
    (a dict: values riding along) is updated in place to their last views."""
    cut = cut or point_cut(m)
    lo, hi = g_range(g_bits)
    op = Operand(Cat(mx, Const(0, 1)))
    g_minus = Signal(hdl.signed(g_bits))
    g_plus = Signal(hdl.signed(g_bits))
    m.d.comb += [g_minus.eq(Mux(g == lo, lo, g - 1)), g_plus.eq(Mux(g == hi, hi, g + 1))]
    ride = {"zero": op.zero, "inf": op.inf, "exp": op.exp, "g": g, "g_minus": g_minus,
            "g_plus": g_plus, **(carry or {})}
    points = {"norm4": "gs_hi", "norm1": "gs_lo"}
    e_shape = hdl.signed(g_bits + 2)             # e: -29 .. 16, a = e + g: one bit more

    def norm_cut(name, v, lz_bits):
        if name == "norm1":
            eb = Signal(e_shape)                  # exp - 15: e before the leading zeros
            ab = Signal(e_shape)
            m.d.comb += [eb.eq(ride["exp"] - FP16.BIAS), ab.eq(ride["exp"] - FP16.BIAS + ride["g"])]
            del ride["exp"]
            ride.update(eb=eb, ab=ab)
        if name not in points:
            return v, lz_bits
        y = cut(points[name], {"v": v, "lz": Cat(*lz_bits), **ride})
        ride.update({key: y[key] for key in ride})
        return y.v, [y.lz[i] for i in range(len(lz_bits))]

    norm, lz = normalize(m, op.sig, FP16.SIG_BITS, cut=norm_cut)
    top = len(norm) - 1
    e = Signal(e_shape)                           # floor(log2 mx) (finite, non-zero mx)
    a = Signal(e_shape)                           # floor(log2 (mx * 2**g))
    m.d.comb += [e.eq(ride.pop("eb") - lz), a.eq(ride.pop("ab") - lz)]
    d = cut("gs_e", {"e": e, "a": a, "pow2": norm[top - FP16.FRAC_BITS:top] == 0, **ride})
    ride = {key: d[key] for key in ride}
    zero, inf, pow2, a = ride["zero"], ride["inf"], d.pow2, d.a
    over = inf | (~zero & ((a > GRADSCALE_HI_LOG2) | ((a == GRADSCALE_HI_LOG2) & ~pow2)))
    under = zero | (~inf & ((a < GRADSCALE_LO_LOG2) | ((a == GRADSCALE_LO_LOG2) & pow2)))
    dv = Signal(e_shape)                          # the direct rule: 5 - e (+1 at a power of 2)
    m.d.comb += dv.eq(GRADSCALE_LO_LOG2 - d.e + pow2)
    d = cut("gs_cmp", {"over": over, "under": under, "dv": dv, **ride})
    ride = {key: d[key] for key in ride}
    paper = Signal(hdl.signed(g_bits))
    direct = Signal(hdl.signed(g_bits))
    m.d.comb += [
        paper.eq(Mux(d.over, ride["g_minus"], Mux(d.under, ride["g_plus"], ride["g"]))),
        direct.eq(Mux(ride["zero"], ride["g"],
                      Mux(ride["inf"], ride["g_minus"], clamp(d.dv, lo, hi)))),
    ]
    if carry is not None:
        carry.update({key: ride[key] for key in carry})
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

    Pipeline (``latency = 8 + ceil(log2(lanes))`` from the ``last`` beat to the result:
    8 for one lane; one input beat per cycle; every stage ends in a register rank)::

        x, g, last -> mask -> max1 .. maxL -> tensor -> tensor_max -> gs_hi -> gs_lo
                      NaN     compare tree    running   max of the    GradScale:
                      -> 0    (a rank per     max       two held      normalize
                              level)          (held,    values        << 8, 4 | << 2, 1
                                              latest)
                   -> gs_e -> gs_cmp -> out
                      e, a     over,     g_paper, g_direct
                      = e + g  under     (selects)

    The accumulator is the one loop: it keeps the tensor's maximum as ``held`` (the beats
    before the latest), ``latest`` and the register ``held > latest``; a beat ``x`` moves
    them to ``max(held, latest)``, ``x`` and ``max(held, latest) > x``, the latter a select
    of the two compares ``held > x`` and ``latest > x`` that run side by side, so the loop
    is one carry chain and a LUT. GradScale's ``g - 1`` and ``g + 1`` are clamped up front,
    and ``over``/``under`` exclude each other: the paper rule is a select. The ranks advance
    in lockstep (``hdl.pipeline``): all load while the output is free, so a stalled output
    stops the pipeline and ``i.ready`` drops at once; a synchronous reset drops the partial
    tensor and the results in flight (the next beat starts a new tensor).

    Timing (``make synth`` flow, LUT-only, seed 1; ``range_tracker_x1_g6``): 203 MHz on
    ECP5-25 (speed 6), 63 MHz on iCE40 UP5K (the unpipelined unit of latency 3: 59 / 21).

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

    #: GradScale's register points (:func:`gradscale_step`), in datapath order.
    GRADSCALE_POINTS = ("gs_hi", "gs_lo", "gs_e", "gs_cmp")

    @property
    def register_points(self):
        """The ranks in datapath order: the lane tree's (``mask``, ``max1`` ..), the
        accumulator (``tensor``, its own registers), ``tensor_max``, GradScale's; the output
        register follows the last one."""
        tree = ("mask",) + tuple(f"max{k + 1}" for k in range(tree_levels(self._lanes)))
        return tree + ("tensor", "tensor_max") + self.GRADSCALE_POINTS

    @property
    def latency(self):
        return len(self.register_points) + 1

    _name = "range_tracker"

    _ports = staticmethod(lambda n, gs: (
        {"x": data.ArrayLayout(FP16.BITS, n), "g": gs, "last": 1},
        {"max": FP16.BITS, "nan": 1, "g_paper": gs, "g_direct": gs}))

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        points = self.register_points
        acc = points.index("tensor")               # the accumulator's rank
        last = Signal()                            # the beat before it ends its tensor
        # The accumulator's rank passes on only the last beat of a tensor.
        pipe = Pipeline(m, self.i, self.o, self.latency, lockstep=True, keep={acc: last})
        cut = point_cut(m, pipe, points)
        s = tracker_max(m, [p.x[k] for k in range(self._lanes)], cut,
                        {"g": p.g, "last": p.last})
        m.d.comb += last.eq(s["last"])
        # The accumulator keeps the running maximum as two values and which is larger:
        # ``held`` (the maximum of the tensor's beats before the latest one), ``latest`` and
        # ``held_wins = held > latest``, all registers. A beat ``x`` moving in makes
        # held = max(held, latest) (a select by a register), latest = x, and
        # held_wins = max(held, latest) > x, a select (by held_wins) of the two compares
        # held > x and latest > x, which run side by side: the loop holds one carry chain
        # and one LUT, and no compare drives a wide select. The first beat of a tensor
        # (``first``, also after a reset) starts from held = 0.
        # Only ``first`` has a reset: the others are loaded by a tensor's first beat before
        # anything reads them (a tensor's result is taken at its last beat).
        mag = FP16.MAG_BITS
        held = Signal(mag, reset_less=True)
        latest = Signal(mag, reset_less=True)
        held_wins = Signal(reset_less=True)
        nan = Signal(reset_less=True)
        g = Signal(hdl.signed(self._g_bits), reset_less=True)
        first = Signal(init=1)
        x = s["max"]

        def greater(a, b):                        # a > b: the borrow out of b - a
            return (b - a)[mag]
        with m.If(pipe.valid[acc - 1] & pipe.en):  # a beat moves into the accumulator
            m.d.sync += [
                held.eq(Mux(first, 0, Mux(held_wins, held, latest))),
                latest.eq(x),
                held_wins.eq(~first & Mux(held_wins, greater(held, x), greater(latest, x))),
                nan.eq((~first & nan) | s["nan"]),
                g.eq(s["g"]),
                first.eq(s["last"]),
            ]
        # The "tensor" rank is the accumulator itself (its valid bit: a tensor has ended);
        # the next rank takes its maximum.
        t = cut("tensor_max", {"max": Mux(held_wins, held, latest), "nan": nan, "g": g})
        carry = {"max": t.max, "nan": t.nan}
        paper, direct = gradscale_step(m, t.max, t.g, self._g_bits, cut, carry)
        with m.If(pipe.en):
            m.d.sync += [self.o.payload.max.eq(carry["max"]),
                         self.o.payload.nan.eq(carry["nan"]),
                         self.o.payload.g_paper.eq(paper), self.o.payload.g_direct.eq(direct)]
        return m
