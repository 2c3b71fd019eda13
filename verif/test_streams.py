"""The stream bench's pieces that need no simulator: the packer against a bit-by-bit
reference, and the stimulus bookkeeping."""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data

from streams import Packer, Stimulus, first_last

LAYOUTS = [
    data.StructLayout({"a": data.ArrayLayout(4, 3), "g": signed(6), "last": 1}),
    data.StructLayout({"x": data.ArrayLayout(signed(8), 5),
                       "s": data.StructLayout({"p": 13, "q": signed(63)})}),
    data.ArrayLayout(41, 16),
    signed(20),
]


def _reference(packer, values, n):
    """One payload integer per row, field by field and element by element."""
    out = [0] * n
    for name, (offset, width, _, _) in packer.fields.items():
        v = np.asarray(values[name]).reshape(n, -1)
        for j in range(n):
            for k in range(v.shape[1]):
                out[j] |= (int(v[j, k]) & ((1 << width) - 1)) << (offset + k * width)
    return out


@pytest.mark.parametrize("layout", LAYOUTS, ids=range(len(LAYOUTS)))
def test_packer_round_trip(layout):
    packer = Packer(layout)
    r = np.random.default_rng(1)
    n = 300
    values = {}
    for name, (_, width, is_signed, count) in packer.fields.items():
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if is_signed else (0, 1 << width)
        v = r.integers(lo, hi, (n, count) if count else n, dtype=np.int64)
        v.flat[:2] = lo, hi - 1                           # both ends of the range
        values[name] = v
    ints = packer.pack(**values)
    assert ints == _reference(packer, values, n)
    assert all(0 <= x < 1 << packer.width for x in ints)
    back = packer.unpack(ints)
    assert set(back) == set(values)
    for name, v in values.items():
        assert np.array_equal(back[name], v), name


def test_packer_defaults_and_errors():
    packer = Packer(LAYOUTS[0])
    assert packer.pack(2, g=-1) == [0b111111 << 12] * 2          # unnamed fields are 0
    assert packer.unpack([])["a"].shape == (0, 3)
    with pytest.raises(KeyError, match="no such payload fields: \\['b'\\]"):
        packer.pack(1, b=1)
    with pytest.raises(ValueError, match="64 bits wide: at most 63"):
        Packer(64)


def test_stimulus_head_and_ends():
    first, last = first_last([2, 1, 3])
    assert list(first) == [1, 0, 1, 1, 0, 0] and list(last) == [0, 1, 1, 0, 0, 1]
    stim = Stimulus({"x": np.arange(6)}, [10, 20, 30], ends=last, inputs={"k": [0, 1, 2]})
    head = stim.head(2)
    assert (head.n_beats, len(head), list(head.beats["x"]), list(head.inputs["k"])) == \
        (3, 2, [0, 1, 2], [0, 1])
    assert len(Stimulus({"x": np.arange(4)}, np.zeros((4, 2)))) == 4      # every beat ends
    with pytest.raises(ValueError, match="2 results end in 6 beats, 3 expected"):
        Stimulus({"x": np.arange(6)}, [1, 2, 3], ends=[0, 1, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="the last beat must end a result"):
        Stimulus({"x": np.arange(2)}, [1], ends=[1, 0])


@pytest.mark.parametrize("depth", [2, 3, 5, 9, 33])
def test_result_fifo_matches_library(depth):
    """``hdl.pipeline.ResultFIFO`` (registered flags) against the library's
    ``SyncFIFOBuffered`` of the same depth, cycle by cycle, under random writes, reads
    (phases of slow and fast reading, so that both run full and empty) and synchronous
    resets (seed logged): the same ``w_rdy``, ``r_rdy``, ``level`` and, where ``r_rdy``,
    the same ``r_data``."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.lib.fifo import SyncFIFOBuffered
    from amaranth.sim import Simulator

    from hdl.pipeline import ResultFIFO

    seed = 2026 + depth
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    m = Module()
    m.domains.sync = cd = ClockDomain()
    ours = m.submodules.ours = ResultFIFO(8, depth)
    lib = m.submodules.lib = SyncFIFOBuffered(width=8, depth=depth)
    cycles, mismatches, seen = 4000, [], {"reads": 0, "full": 0, "resets": 0}

    async def bench(ctx):
        for t in range(cycles):
            fast = t % 400 >= 200
            w_en, r_en = (int(x) for x in rng.random(2) < (0.55, 0.8 if fast else 0.3))
            reset = int(rng.random() < 0.004)
            word = int(rng.integers(256))
            ctx.set(cd.rst, reset)
            for f in (ours, lib):
                ctx.set(f.w_en, w_en)
                ctx.set(f.r_en, r_en)
                ctx.set(f.w_data, word)
            got = [(ctx.get(f.w_rdy), ctx.get(f.r_rdy), ctx.get(f.level),
                    ctx.get(f.r_data) if ctx.get(f.r_rdy) else None) for f in (ours, lib)]
            if got[0] != got[1]:
                mismatches.append((t, got))
            seen["reads"] += got[1][1] and r_en and not reset
            seen["full"] += not got[1][0]
            seen["resets"] += reset
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    print(seen)
    assert not mismatches, mismatches[:5]
    assert seen["reads"] > cycles // 4 and seen["full"] > 0 and seen["resets"] > 0

    with pytest.raises(ValueError, match="depth must be an integer >= 2, not 1"):
        ResultFIFO(8, 1)
