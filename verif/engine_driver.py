"""The driver of :class:`hdl.engine.TrainingEngine`: tiles and commands on the host side, the
cycle-level port driver for cocotb, and :class:`RTLBackend`, which offers the golden
functions a training step uses (``gemm``, ``rescale``, ``to_fp4``, ``from_fp4``,
``gradscale``, plus ``tracker_max``) with the same call signatures, computed by the
simulated engine.

Host side (plain NumPy, no simulator): :func:`pack_a`, :func:`pack_b`, :func:`gemm_tiles`
and :func:`unpack_gemm` turn a GEMM into commands and data words and the result beats back
into a matrix; :func:`command` builds one command.

Simulator side: :class:`EnginePorts` drives ``cmd``, ``din`` and ``o`` of the engine from one
coroutine, cycle by cycle (commands back to back, optional gaps and backpressure, an optional
reset at a given cycle), and splits the output at the status beats. :class:`RTLBackend`
wraps it in blocking calls (``cocotb.task.resume``) for code running in a ``bridge`` thread:
the training loop of ``scripts/fourbit_nn.py`` runs unchanged against it.
"""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import resume
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hdl.engine import CONVERTERS, OPS, STATUS, TrainingEngine

from streams import Packer

__all__ = ["EngineError", "command", "reads", "pack_a", "pack_b", "gemm_tiles", "gemm_fields",
           "gemm_commands", "gemm_results", "unpack_gemm", "EnginePorts", "RTLBackend",
           "OP_NAMES", "CONV_NAMES", "STATUS_NAMES"]

STATUS_NAMES = {v: k for k, v in STATUS.items()}
OP_NAMES = {v: k for k, v in OPS.items()}
CONV_NAMES = {v: k for k, v in CONVERTERS.items()}


class EngineError(RuntimeError):
    """A command the engine refused (its status code), or a call it cannot serve."""


def command(op, **fields):
    """A command's fields: ``op`` by name (:data:`hdl.engine.OPS`), ``conv`` by name
    (:data:`hdl.engine.CONVERTERS`), the rest as given (0 by default)."""
    out = {"op": OPS[op] if isinstance(op, str) else op}
    if isinstance(fields.get("conv"), str):
        fields["conv"] = CONVERTERS[fields["conv"]]
    out.update(fields)
    return out


#: The command fields each opcode reads (``convert``: also those of its converter,
#: :data:`CONVERTER_READS`); the others are don't-cares (:class:`EnginePorts` ``noise``).
OP_READS = {"load_a": ("count",), "load_b": ("count",),
            "gemm": ("mode", "a_signed", "b_signed", "phase", "g", "m", "kb", "ng"),
            "convert": ("conv", "count")}
CONVERTER_READS = {"rescale_int4_sym": ("scale",), "rescale_uint4": ("scale",),
                   "to_fp4": ("g", "phase"), "from_fp4": ("g", "phase"), "track": ("g",)}


def reads(fields):
    """The fields a command with these ``fields`` reads (an unknown opcode or converter
    reads only ``op``, and ``conv``)."""
    op = OP_NAMES.get(fields.get("op"))
    out = ("op", *OP_READS.get(op, ()))
    if op == "convert":
        conv = CONV_NAMES.get(fields.get("conv"))
        out += CONVERTER_READS.get(conv, ())
    return out


def _words(nibbles):
    """(n, 2 * k) 4-bit codes -> n Python ints of ``8 * k`` bits (element 0 lowest)."""
    x = np.asarray(nibbles, np.uint8)
    b = (x[:, 0::2] | (x[:, 1::2] << 4)).astype(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in b]


def pack_a(a, lanes):
    """A (M, K) codes as words ``m * kb + k`` (K padded with zero codes)."""
    m, k = a.shape
    kb = -(-k // lanes)
    pad = np.zeros((m, kb * lanes), np.uint8)
    pad[:, :k] = a
    return _words(pad.reshape(m * kb, lanes))


def pack_b(b, lanes, rows):
    """B (K, N) codes as the ``load_b`` word stream: word ``(g * kb + k) * rows + r`` is
    column ``g * rows + r``, beat ``k`` (K and N padded with zero codes)."""
    k, n = b.shape
    kb = -(-k // lanes)
    ng = -(-n // rows)
    pad = np.zeros((kb * lanes, ng * rows), np.uint8)
    pad[:k, :n] = b
    # (kb, lanes, ng, rows) -> (ng, kb, rows, lanes)
    w = pad.reshape(kb, lanes, ng, rows).transpose(2, 0, 3, 1)
    return _words(w.reshape(ng * kb * rows, lanes))


def gemm_tiles(m, k, n, lanes, rows, a_depth, b_depth):
    """Tiles of a (M, K) x (K, N) GEMM that fit the memories: ``(m0, m1, n0, n1)`` (whole K
    in every tile: fp16 accumulation runs along all of K in one dot product)."""
    kb = -(-k // lanes)
    mt, gt = a_depth // kb, b_depth // kb
    if not mt or not gt:
        raise EngineError(f"K = {k} needs {kb} words per row; A holds {a_depth} and each B "
                          f"bank {b_depth} words: build the engine with deeper memories")
    return [(m0, min(m, m0 + mt), n0, min(n, n0 + gt * rows))
            for m0 in range(0, m, mt) for n0 in range(0, n, gt * rows)]


def gemm_fields(ctx):
    """A ``gemm`` command's context fields from :func:`golden.gemm`'s keywords ``ctx``."""
    return {"mode": int(ctx["mode"] == "backward"), "a_signed": int(ctx["a_signed"]),
            "b_signed": int(ctx["b_signed"]), "phase": int(ctx["phase"] == "odd"),
            "g": int(ctx["g"])}


def gemm_commands(engine, a, b, ctx):
    """The commands of ``C = A x B`` on ``engine``, tile by tile (``load_a``, ``load_b``,
    ``gemm``): ``(commands, tiles)``. ``ctx``: :func:`golden.gemm`'s ``mode``,
    ``a_signed``, ``b_signed``, ``phase`` and ``g``."""
    m, k = a.shape
    n = b.shape[1]
    e = engine
    fields = gemm_fields(ctx)
    cmds, tiles = [], gemm_tiles(m, k, n, e.lanes, e.rows, e.a_depth, e.b_depth)
    for m0, m1, n0, n1 in tiles:
        wa, wb = pack_a(a[m0:m1], e.lanes), pack_b(b[:, n0:n1], e.lanes, e.rows)
        cmds += [(command("load_a", count=len(wa)), wa),
                 (command("load_b", count=len(wb)), wb),
                 (command("gemm", m=m1 - m0, kb=-(-k // e.lanes),
                          ng=-(-(n1 - n0) // e.rows), **fields), [])]
    return cmds, tiles


def gemm_results(engine, done, tiles, m, n):
    """The (M, N) codes and flags of a GEMM from the results of :func:`gemm_commands`
    (every third command is a tile's ``gemm``)."""
    c = np.zeros((m, n), np.int64)
    f = np.zeros((m, n), np.int64)
    for (m0, m1, n0, n1), res in zip(tiles, done[2::3], strict=True):
        assert res["status"] == "ok", res["status"]
        c[m0:m1, n0:n1], f[m0:m1, n0:n1] = unpack_gemm(
            res["beats"]["data"], res["beats"]["flags"], m1 - m0, n1 - n0, engine.rows)
    return c, f


def unpack_gemm(data, flags, m, n, rows):
    """Result beats (``data``, ``flags``: (beats, rows) arrays) of one GEMM tile -> (M, N)
    codes and flags. Beat ``g * m + i`` holds row ``i``, columns ``g * rows ..``."""
    ng = -(-n // rows)
    c = data.reshape(ng, m, rows).transpose(1, 0, 2).reshape(m, ng * rows)[:, :n]
    f = flags.reshape(ng, m, rows).transpose(1, 0, 2).reshape(m, ng * rows)[:, :n]
    return c, f


class EnginePorts:
    """Cycle-level driver of the engine's three streams (see the module docstring).

    ``valid_prob`` / ``ready_prob``: chance per cycle that the source offers its next beat /
    that ``o`` is ready (1: full rate). ``noise``: every command field its opcode (and
    converter) does not read (:func:`reads`) gets a random value, so that a bench sees an
    engine that reads a field it should not.
    """

    def __init__(self, dut, engine, rng=None, valid_prob=1.0, ready_prob=1.0, noise=False):
        self.dut, self.engine = dut, engine
        self.noise = noise
        self.rng = rng or np.random.default_rng(0)
        self.valid_prob, self.ready_prob = valid_prob, ready_prob
        self.pcmd = Packer(engine.cmd.payload.shape())
        self.pout = Packer(engine.o.payload.shape())
        self.status_bit = self.pout.fields["status"][0]
        self.cycle = 0
        self._driven = {}

    async def start(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in ("cmd__valid", "din__valid", "o__ready"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(dut.clk)
        self._ports = {name: getattr(dut, name) for name in (
            "rst", "cmd__valid", "cmd__payload", "cmd__ready", "din__valid", "din__payload",
            "din__ready", "o__valid", "o__payload", "o__ready")}
        self._fall = FallingEdge(dut.clk)
        self._driven = {"rst": 1, "cmd__valid": 0, "din__valid": 0, "o__ready": 0}
        await self._fall
        self._drive("rst", 0)
        return self

    def _drive(self, name, value):
        if self._driven.get(name) != value:
            self._ports[name].value = value
            self._driven[name] = value

    async def run(self, commands, *, reset_at=None, reset_cycles=3, limit=None):
        """Run ``commands`` (a list of ``(fields, words)``: the command's fields and the
        ``din`` words it consumes) back to back. Returns one dict per command with
        ``status`` (name), ``beats`` (the unpacked result fields: ``data``, ``flags``),
        ``t_cmd`` (cycle the command was taken), ``t_last`` (cycle of its last result, or
        of its status beat) and ``cycles`` (``t_last - t_cmd``). With ``reset_at`` the
        engine is reset in that cycle (counted from this call), ``rst`` high for
        ``reset_cycles`` cycles, and the run stops there: the commands finished before it
        are returned."""
        cols = {k: np.array([c[0].get(k, 0) for c in commands], np.int64)
                for k in self.pcmd.fields}
        ranges = {}
        for k, v in cols.items():
            _, width, signed, _ = self.pcmd.fields[k]
            lo, hi = (-(1 << width - 1), (1 << width - 1) - 1) if signed else (0, (1 << width) - 1)
            ranges[k] = lo, hi
            if v.size and (v.min() < lo or v.max() > hi):
                raise EngineError(f"command field {k} must be in {lo} .. {hi}: got "
                                  f"{v.min()} .. {v.max()}")
        if self.noise:          # random values in the fields a command does not read
            for i, (fields, _) in enumerate(commands):
                used = reads(fields)
                for k in cols:
                    if k not in used:
                        cols[k][i] = self.rng.integers(ranges[k][0], ranges[k][1] + 1)
        cmds = self.pcmd.pack(**cols) if commands else []
        words = [w for _, ws in commands for w in ws]
        p = self._ports
        rng, vp, rp = self.rng, self.valid_prob, self.ready_prob
        ci = wi = 0
        hold_c = hold_w = False
        outs, done = [], []
        t_cmd = []
        t_out = None
        start = self.cycle
        limit = limit or (50 * (len(words) + 1) + 200 * len(commands) + 100000)
        sbit = self.status_bit
        while len(done) < len(commands):
            if reset_at is not None and self.cycle - start == reset_at:
                await self._reset(reset_cycles)
                return done
            assert self.cycle - start < limit, \
                f"engine timed out: {len(done)} of {len(commands)} commands done"
            await self._fall
            if ci < len(cmds) and not hold_c:
                hold_c = vp >= 1 or rng.random() < vp
            if wi < len(words) and not hold_w:
                hold_w = vp >= 1 or rng.random() < vp
            self._drive("cmd__valid", int(hold_c))
            if hold_c:
                self._drive("cmd__payload", cmds[ci])
            self._drive("din__valid", int(hold_w))
            if hold_w:
                self._drive("din__payload", words[wi])
            ready = rp >= 1 or rng.random() < rp
            self._drive("o__ready", int(ready))
            await ReadOnly()
            self.cycle += 1
            if hold_c and p["cmd__ready"].value:
                ci, hold_c = ci + 1, False
                t_cmd.append(self.cycle)
            if hold_w and p["din__ready"].value:
                wi, hold_w = wi + 1, False
            if ready and p["o__valid"].value:
                v = p["o__payload"].value.to_unsigned()
                if v >> sbit & 1:
                    k = len(done)
                    beats = self.pout.unpack(outs) if outs else None
                    code = v & 0xFFFF
                    last = t_out if outs else self.cycle
                    done.append({"status": STATUS_NAMES.get(code, code), "beats": beats,
                                 "t_cmd": t_cmd[k], "t_last": last,
                                 "cycles": last - t_cmd[k]})
                    outs = []
                else:
                    outs.append(v)
                    t_out = self.cycle
        assert wi == len(words), f"{len(words) - wi} din words were not consumed"
        return done

    async def _reset(self, cycles=3):
        await self._fall
        self._drive("rst", 1)
        self._drive("cmd__valid", 0)
        self._drive("din__valid", 0)
        for _ in range(cycles):
            await self._fall
            self.cycle += 1
        self._drive("rst", 0)

    async def idle(self, cycles):
        """``cycles`` cycles with nothing offered and ``o`` ready; returns the number of
        output beats seen (none are expected)."""
        seen = 0
        for _ in range(cycles):
            await self._fall
            self._drive("cmd__valid", 0)
            self._drive("din__valid", 0)
            self._drive("o__ready", 1)
            await ReadOnly()
            self.cycle += 1
            seen += int(bool(self._ports["o__valid"].value))
        return seen


class RTLBackend:
    """The golden functions of a training step, computed by the simulated engine.

    Call only from a thread started with ``cocotb.task.bridge``: every call runs engine
    commands through :func:`cocotb.task.resume`. ``stats`` collects, per GEMM shape
    ``"MxKxN mode"``, the calls, useful MACs and the cycles from each ``gemm`` command to
    its last result (summed over tiles; loads not counted); ``progress(key, cycles,
    utilisation)``, when given, is called after every GEMM.
    """

    def __init__(self, ports, *, progress=None):
        self.ports = ports
        self.e = ports.engine
        self.stats = {}
        self.progress = progress

    # -- plumbing --------------------------------------------------------------------------
    def _run(self, commands):
        out = resume(self.ports.run)(commands)
        for c, r in zip(commands, out, strict=True):
            if r["status"] != "ok":
                raise EngineError(f"engine refused {c[0]}: {r['status']}")
        return out

    def _convert(self, conv, x, **fields):
        """``x`` (any shape) through converter ``conv``: the unpacked result beats."""
        cl = self.e.conv_lanes
        flat = np.asarray(x).ravel()
        n = -(-flat.size // cl)
        if not n:
            return None
        pad = np.zeros(n * cl, np.uint64)
        pad[:flat.size] = flat
        width = 4 if conv == "from_fp4" else 16      # fp4 codes in 4-bit lanes
        shifts = (np.arange(cl, dtype=np.uint64) * np.uint64(width))
        words = [int(w) for w in (pad.reshape(n, cl) << shifts).sum(axis=1, dtype=np.uint64)]
        r, = self._run([(command("convert", conv=conv, count=len(words), **fields), words)])
        return r["beats"]

    def _lanes_out(self, beats, n, shape):
        cl = self.e.conv_lanes
        if beats is None:                              # an empty tensor
            return np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        data = beats["data"][:, :cl].ravel()[:n].reshape(shape)
        flags = beats["flags"][:, :cl].ravel()[:n].reshape(shape)
        return data, flags

    # -- the golden API ----------------------------------------------------------------
    def _codes(self, conv, x, dtype, flags, **fields):
        """``x`` through converter ``conv``: its codes (``dtype``, shaped like ``x``) and,
        with ``flags``, the flag bytes."""
        x = np.asarray(x)
        codes, f = self._lanes_out(self._convert(conv, x, **fields), x.size, x.shape)
        codes, f = codes.astype(dtype), f.astype(np.uint8)
        return (codes, f) if flags else codes

    def rescale(self, x, s, fmt="int4", rounding="rne", u=None, r_bits=0, *, flags=False):
        if fmt not in ("int4_sym", "uint4") or rounding != "rne" or u is not None:
            raise EngineError(f"the engine rescales to int4_sym and uint4 with rne, not "
                              f"{fmt!r} / {rounding!r}")
        return self._codes(f"rescale_{fmt}", x, np.uint8, flags, scale=int(s))

    def to_fp4(self, x, g=0, phase="even", *, flags=False):
        return self._codes("to_fp4", x, np.uint8, flags, g=int(g), phase=int(phase == "odd"))

    def from_fp4(self, c, g=0, phase="even", *, flags=False):
        return self._codes("from_fp4", c, np.uint16, flags, g=int(g),
                           phase=int(phase == "odd"))

    def _track(self, x16, g):
        beats = self._convert("track", np.asarray(x16, np.uint16), g=int(g))
        d, f = beats["data"][0], beats["flags"][0]
        g_paper = ((int(d[1]) & 0xFFFF) ^ 0x8000) - 0x8000       # sign-extended to 16 bits
        g_direct = ((int(f[1]) & 0xFF) ^ 0x80) - 0x80            # 8-bit two's complement
        return int(d[0]), int(f[0]), g_paper, g_direct

    def tracker_max(self, dy16):
        """``max|dY|`` as the range tracker reports it (an fp16 code, NaN left out)."""
        dy16 = np.asarray(dy16, np.uint16)
        if dy16.size == 0:
            return np.uint16(0)
        return np.uint16(self._track(dy16, 0)[0])

    def gradscale(self, max_code, g, rule="paper", *, g_min=None, g_max=None):
        lo, hi = -(1 << (self.e.g_bits - 1)), (1 << (self.e.g_bits - 1)) - 1
        if (g_min, g_max) != (lo, hi):
            raise EngineError(f"the engine's tracker clamps g to {lo} .. {hi} (g_bits = "
                              f"{self.e.g_bits}); pass g_min={lo}, g_max={hi}")
        if rule not in ("paper", "direct"):
            raise EngineError(f"rule must be 'paper' or 'direct', not {rule!r}")
        _, _, paper, direct = self._track(np.array([max_code], np.uint16), g)
        return np.int64(paper if rule == "paper" else direct)

    def gemm(self, a, b, *, mode="forward", a_signed=False, b_signed=True, phase="even", g=0,
             accumulator="fp16", lanes=8, flags=False):
        e = self.e
        if lanes != e.lanes or accumulator != e.accumulator:
            raise EngineError(f"the engine computes lanes={e.lanes}, accumulator="
                              f"{e.accumulator!r}; asked for lanes={lanes}, "
                              f"accumulator={accumulator!r}")
        a, b = np.asarray(a, np.uint8), np.asarray(b, np.uint8)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"gemm needs a (M, K) and b (K, N); got {a.shape} and {b.shape}")
        m, k = a.shape
        n = b.shape[1]
        ctx = {"mode": mode, "a_signed": a_signed, "b_signed": b_signed, "phase": phase,
               "g": g}
        cmds, tiles = gemm_commands(e, a, b, ctx)
        done = self._run(cmds)
        out, fl = gemm_results(e, done, tiles, m, n)
        out, fl = out.astype(np.uint16), fl.astype(np.uint8)
        cycles = sum(d["cycles"] for d in done[2::3])
        key = f"{m}x{k}x{n} {mode}"
        s = self.stats.setdefault(key, {"calls": 0, "macs": 0, "cycles": 0})
        s["calls"] += 1
        s["macs"] += m * k * n
        s["cycles"] += cycles
        if self.progress:
            self.progress(key, cycles, m * k * n / (e.macs_per_cycle * cycles))
        return (out, fl) if flags else out


def engine_of(p):
    """The engine a bench's parameters describe."""
    return TrainingEngine(p["rows"], p["lanes"], p.get("accumulator", "fp16"),
                          slots=p["slots"], acc_stages=p["acc_stages"],
                          lane_stages=p.get("lane_stages", 1), out_depth=p["out_depth"],
                          a_depth=p["a_depth"], b_depth=p["b_depth"],
                          converters=p.get("converters"))


__all__ += ["engine_of"]
