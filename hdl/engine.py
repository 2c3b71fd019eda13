"""The 4-bit training engine: ``rows`` interleaved dot units fed from on-chip operand tiles,
and the converters a training step needs, behind one command stream.

See :class:`TrainingEngine`. The command set is :data:`OPS` and :data:`CONVERTERS`; status
codes are :data:`STATUS`. The driver side (packing tiles, tiling a large GEMM, the golden
functions' call signatures) is ``verif/engine_driver.py``.
"""

from amaranth.hdl import Const, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from golden.formats import ACCUMULATORS, FP16, G_BITS_MIN

from .dot import DotProduct
from .fp4 import FP4Decoder, LogConverter
from .params import FLAGS_SHAPE, check_g_bits, g_range, integer, lanes_pow2, positive_int
from .rescale import RangeRescale
from .tracker import RangeTracker

__all__ = ["TrainingEngine", "OPS", "CONVERTERS", "STATUS", "FIELD_BITS"]

#: Command opcodes (the ``op`` field).
OPS = {"load_a": 0, "load_b": 1, "gemm": 2, "convert": 3}
#: Converters of the ``convert`` command (the ``conv`` field), in the order of their ports.
CONVERTERS = {"rescale_int4_sym": 0, "rescale_uint4": 1, "to_fp4": 2, "from_fp4": 3,
              "track": 4}
#: Status codes of the status beat that ends every command (``data[0]``).
STATUS = {"ok": 0, "bad_op": 1, "too_large": 2, "empty": 3, "bad_conv": 4}
#: Width of the command's size fields (``count``, ``m``, ``kb``, ``ng``).
FIELD_BITS = 16
#: Results of the converters queued for ``o`` (LUT RAM: 20 entries and the head register).
CONV_FIFO = 21

# FSM states
_IDLE, _CHECK, _LOAD, _RUN, _CONV, _STATUS = range(6)


class TrainingEngine(wiring.Component):
    """A GEMM engine for 4-bit training: ``C = A x B`` at ``rows x lanes`` MACs per cycle
    with the paper's fp16 accumulation (or the exact one), bit-exact with
    :func:`golden.gemm` ``(..., lanes=lanes)``, plus the stream converters of a training step.

    Array: ``rows`` :class:`hdl.dot.DotProduct` units, each with ``slots`` interleaved
    accumulators, all fed the same beat of ``A`` (``lanes`` codes along K of one row of A,
    broadcast) and each its own column of ``B``: unit ``r`` computes the outputs of columns
    ``n0 + r`` for ``slots`` rows of A at once. The GEMM runs, per group of ``rows`` columns
    (``ng`` groups) and per group of ``slots`` rows of A, for each K-beat ``kb`` and each row
    ``s`` of the group: beat ``(row m0 + s, beat kb)`` in slot ``s`` (``first`` at ``kb = 0``,
    ``last`` at the last beat). Consecutive beats of one dot product are ``slots`` cycles
    apart, so with ``slots >= loop_cycles`` of the dot unit the array takes one beat every
    cycle; in a group of fewer than ``loop_cycles`` rows (the ragged end of M) the sequencer
    waits before each slot's next beat until its addition is done, with the same results.
    (The sequencer keeps that spacing itself, the dot units' own interlock's rule, and counts
    the results owed against their FIFOs, so they are built without either check:
    ``DotProduct(..., paced=True)``.)

    Operand tiles, in ``amaranth.lib.memory`` (block RAM), ``lanes`` 4-bit codes per word
    (lane 0 in the low bits), K padded with zero codes to whole beats (the golden model pads
    the same way):

    - ``A``: ``a_depth`` words, word ``m * kb + k`` = row ``m``, beat ``k``.
    - ``B``: ``rows`` banks of ``b_depth`` words; bank ``r`` word ``g * kb + k`` = column
      ``g * rows + r``, beat ``k``. ``load_b`` writes its ``j``-th word to bank ``j % rows``,
      word ``j // rows``: the driver interleaves the banks. Columns past N in the last group
      are computed too (pad them with zero codes) and their results dropped by the driver.

    Commands (stream ``cmd``; one at a time, each ends with one status beat on ``o``):

    ======== ====================================================================
    load_a   ``count`` words from ``din`` into A from word 0.
    load_b   ``count`` words from ``din`` into the B banks, interleaved (above).
    gemm     ``m`` rows of A, ``kb`` beats per dot product, ``ng`` column groups;
             ``mode``, ``a_signed``, ``b_signed``, ``phase``, ``g`` as for the dot
             unit. ``o`` carries one beat per (group, row): ``data[r]``, ``flags[r]``
             = output (row, ``group * rows + r``), groups in order, rows in order.
    convert  ``count`` beats from ``din`` through converter ``conv`` (:data:`CONVERTERS`),
             ``clanes = lanes // 4`` values per beat (fp16 codes in ``din.data``'s low
             ``16 * clanes`` bits, fp4 codes in the low ``4 * clanes`` for ``from_fp4``):
             ``rescale_*`` (:class:`RangeRescale`, scale ``scale``), ``to_fp4``
             (:class:`LogConverter`, ``g``, ``phase``), ``from_fp4``
             (:class:`FP4Decoder`, ``g``, ``phase``): one ``o`` beat per ``din`` beat,
             lane ``j``'s code in ``data[j]`` and its flags in ``flags[j]``. ``track``
             (:class:`RangeTracker`, ``g``): the ``count`` beats are one tensor; one ``o``
             beat with ``data[0] = max``, ``flags[0] = nan``, ``data[1] = g_paper``
             (sign-extended), ``flags[1] = g_direct`` (8-bit two's complement).
    ======== ====================================================================

    Status: after a command's last result, ``o`` carries one beat with ``status = 1`` and
    ``data[0]`` the code of :data:`STATUS`: ``ok``; ``bad_op``
    (unknown opcode); ``bad_conv`` (unknown converter); ``empty`` (a size of 0);
    ``too_large`` (a load longer than its memory, or a GEMM whose ``m * kb`` exceeds
    ``a_depth`` or ``ng * kb`` ``b_depth``). A refused command reads nothing from ``din``,
    writes no memory and produces no result: only its status beat.

    Utilisation: a GEMM whose M is a multiple of ``slots`` runs ``rows x lanes`` MACs in every
    cycle from its first beat to its last; from the command to the last result it adds the
    size check (``kb``'s bit length + 2 cycles), the memory read and ``dot_latency``. In the
    digits MLP at batch 32 (``make train-rtl``, 4 x 8 lanes, 16 slots) the GEMMs whose sizes
    are multiples of rows, lanes and slots measured 99.4%; a ragged M (fewer rows than
    slots in the last group) waits for the accumulator loop and N past the last whole group of
    ``rows`` computes padding columns. Keep ``out_depth`` above ``dot_latency``: a result
    FIFO shallower than the pipeline stalls one-beat dot products (K <= ``lanes``).

    Memory: A ``a_depth x 4 * lanes`` bits, B ``rows x b_depth x 4 * lanes`` bits
    (``memory_bits``), each dot unit's result FIFO ``(out_depth + 1) x 24`` bits, its
    context store ``slots x (g_bits + 4)`` bits; the default engine of ``hdl.units``
    (``ENGINE``) holds 16 + 32 kbit of operands.

    Timing: a command is taken when the previous one's status beat has left. ``gemm`` checks
    its sizes in ``kb``'s bit length + 2 cycles (a shift-and-add multiply on the bits of
    ``a_depth``, ``b_depth`` and their minimum; a ``kb`` above that minimum is refused
    within that minimum's bit length + 2), issues
    ``ng * ceil(m / slots) * kb * min(slots, m)`` beats at one per cycle (a ragged group of
    fewer than ``loop_cycles`` rows waits for the accumulator loop), and ends ``latency`` of
    the dot unit later (plus backpressure on ``o``). Loads and conversions take one ``din`` beat per
    cycle. Handshakes follow ``amaranth.lib.stream``; backpressure on ``o`` stalls without
    loss. A synchronous reset aborts the command in flight and empties every pipeline; the
    memories keep their contents (a load cut by a reset must be repeated).

    Parameters
    ----------
    rows : int
        Dot units (power of two, 2 .. 64, at least ``lanes // 4``).
    lanes : int
        MACs per dot unit per cycle (power of two, 4 .. 64).
    accumulator : ``"fp16"`` or ``"exact"``
    slots, acc_stages, lane_stages, out_depth :
        The dot units' (:class:`hdl.dot.DotProduct`).
    a_depth, b_depth : int
        Words of A and of each B bank.
    g_bits : int
        Width of ``g`` (6 .. 8).
    converters : tuple of str
        The converters built (default: all of :data:`CONVERTERS`); ``convert`` with another
        one is refused (``bad_conv``). A small FPGA can leave them out.

    Members
    -------
    cmd : ``In(stream.Signature(command_layout))``
    din : ``In(stream.Signature(StructLayout({"data": 4 * lanes})))``
    o : ``Out(stream.Signature(StructLayout({"data": ArrayLayout(16, rows),
        "flags": ArrayLayout(8, rows), "status": 1})))``
    """

    def __init__(self, rows=4, lanes=8, accumulator="fp16", *, slots=16, acc_stages=14,
                 lane_stages=2, out_depth=32, a_depth=512, b_depth=256, g_bits=G_BITS_MIN,
                 converters=None):
        if converters is None:
            converters = tuple(CONVERTERS)
        if isinstance(converters, str) or not all(c in CONVERTERS for c in converters):
            raise ValueError(f"converters must be names from {tuple(CONVERTERS)}, not "
                             f"{converters!r}")
        self._converter_names = tuple(c for c in CONVERTERS if c in converters)
        self._lanes = lanes_pow2(lanes)
        if self._lanes < 4:
            raise ValueError(f"lanes must be at least 4 (the converters take lanes // 4 fp16 "
                             f"values per data word), not {lanes}")
        rows = positive_int(rows, "rows")
        if rows & (rows - 1) or not 2 <= rows <= 64:
            raise ValueError(f"rows must be a power of two from 2 to 64, not {rows}")
        if rows < self._lanes // 4:
            raise ValueError(f"rows must be at least lanes // 4 = {self._lanes // 4} (an "
                             f"output beat carries one converted value per row), not {rows}")
        self._rows = rows
        if accumulator not in ACCUMULATORS:
            raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
        self._accumulator = accumulator
        self._g_bits = check_g_bits(g_bits)
        if self._g_bits > 8:
            raise ValueError(f"g_bits must be at most 8 in the engine (the tracker's g_direct "
                             f"leaves in an 8-bit flags field), not {g_bits}")
        self._a_depth = integer(a_depth, "a_depth", 1, 1 << FIELD_BITS - 1)
        self._b_depth = integer(b_depth, "b_depth", 1, 1 << FIELD_BITS - 1)
        if accumulator == "exact":
            acc_stages = min(acc_stages, 1)
        # The dot unit checks its own parameters (slots against its accumulator loop). It
        # is paced: the sequencer spaces each slot's beats and counts the results (elaborate).
        slots = positive_int(slots, "slots")
        if integer(out_depth, "out_depth", 0) < 8:
            raise ValueError(f"out_depth must be at least 8 in the engine (the dot units run "
                             f"in credit mode; the sequencer keeps 4 results of margin), not "
                             f"{out_depth}")
        self._dot_kwargs = {"slots": slots, "acc_stages": acc_stages,
                            "lane_stages": lane_stages, "out_depth": out_depth,
                            "g_bits": self._g_bits, "paced": True}
        self._dot = DotProduct(self._lanes, accumulator, **self._dot_kwargs)
        self._dot._MustUse__silence = True         # only read for its properties
        self._slots = self._dot.slots
        if self._slots < 2:
            raise ValueError(f"slots must be at least 2 (the dot units' beats carry a slot), "
                             f"not {slots}")
        super().__init__({
            "cmd": In(stream.Signature(self.command_layout(self._g_bits))),
            "din": In(stream.Signature(data.StructLayout({"data": 4 * self._lanes}))),
            "o": Out(stream.Signature(self.output_layout(rows))),
        })

    @staticmethod
    def command_layout(g_bits=G_BITS_MIN):
        """``| ng | kb | m | count | scale | g | phase | b_signed | a_signed | mode | conv |
        op |`` (MSB to LSB; sizes ``FIELD_BITS`` wide)."""
        return data.StructLayout({
            "op": 3, "conv": 3, "mode": 1, "a_signed": 1, "b_signed": 1, "phase": 1,
            "g": signed(g_bits), "scale": FP16.BITS,
            "count": FIELD_BITS, "m": FIELD_BITS, "kb": FIELD_BITS, "ng": FIELD_BITS,
        })

    @staticmethod
    def output_layout(rows):
        """``| status | flags[rows] | data[rows] |`` (MSB to LSB; element 0 in the low bits)."""
        return data.StructLayout({"data": data.ArrayLayout(FP16.BITS, rows),
                                  "flags": data.ArrayLayout(FLAGS_SHAPE, rows), "status": 1})

    rows = property(lambda self: self._rows)
    lanes = property(lambda self: self._lanes)
    slots = property(lambda self: self._slots)
    accumulator = property(lambda self: self._accumulator)
    g_bits = property(lambda self: self._g_bits)
    a_depth = property(lambda self: self._a_depth)
    b_depth = property(lambda self: self._b_depth)
    conv_lanes = property(lambda self: self._lanes // 4)
    converters = property(lambda self: self._converter_names)

    @property
    def _conv_mask(self):
        return sum(1 << CONVERTERS[c] for c in self._converter_names)
    out_depth = property(lambda self: self._dot.out_depth)

    @property
    def g_range(self):
        """``(lowest, highest)`` ``g`` of a command (``g_bits`` signed)."""
        return g_range(self._g_bits)

    @property
    def dot_latency(self):
        """Cycles from a dot product's ``last`` beat entering a dot unit to its result."""
        return self._dot.latency

    def gemm_cycles(self, m, kb, ng):
        """Cycles from the transfer of a ``gemm`` command to the transfer of its last result
        at full rate (every row group at least ``loop_cycles`` rows, ``o`` ready, result
        FIFOs deeper than the pipeline): one per beat, the size check (``kb``'s bit length),
        four cycles of control, memory read and its register, the dot unit, the output
        register."""
        return ng * m * kb + self.dot_latency + 5 + int(kb).bit_length()

    @property
    def latency(self):
        """Cycles from the transfer of a one-beat ``gemm`` command (``m = kb = ng = 1``) to
        the transfer of its result: :meth:`gemm_cycles` ``(1, 1, 1)``."""
        return self.gemm_cycles(1, 1, 1)

    @property
    def macs_per_cycle(self):
        return self._rows * self._lanes

    @property
    def memory_bits(self):
        """Operand tile bits: ``{"a": ..., "b": ...}`` (B summed over its banks)."""
        word = 4 * self._lanes
        return {"a": self._a_depth * word, "b": self._rows * self._b_depth * word}

    @property
    def module_name(self):
        tail = "" if len(self._converter_names) == len(CONVERTERS) else f"_c{self._conv_mask:02x}"
        return (f"engine{self._rows}x{self._lanes}_{self._accumulator}_s{self._slots}"
                f"_q{self.out_depth}_a{self._a_depth}_b{self._b_depth}{tail}")

    def elaborate(self, platform):
        m = Module()
        R, N, S = self._rows, self._lanes, self._slots
        word = 4 * N
        o = self.o

        # --- memories ---------------------------------------------------------------------
        a_mem = m.submodules.a_mem = memory.Memory(shape=word, depth=self._a_depth, init=[])
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        b_wr, b_rd = [], []
        for r in range(R):
            bm = m.submodules[f"b_mem{r}"] = memory.Memory(shape=word, depth=self._b_depth,
                                                           init=[])
            b_wr.append(bm.write_port())
            b_rd.append(bm.read_port())

        # --- the command register and the sequencer state ----------------------------------
        cmd = Signal(self.command_layout(self._g_bits), name="cur")
        state = Signal(range(6), init=_IDLE)
        code = Signal(8)                      # status code of the command
        owed = Signal(FIELD_BITS)            # results issued, not yet out
        m.d.comb += self.cmd.ready.eq((state == _IDLE) & ~ResetSignal("sync"))
        take_cmd = self.cmd.valid & self.cmd.ready

        # Shift-and-add multiply for the GEMM size check: prod_a = m * kb, prod_b = ng * kb,
        # on the bits an accepted command needs. The factors are >= 1, so an accepted one
        # has m <= a_depth, ng <= b_depth and kb <= min(a_depth, b_depth): those are checked
        # apart, and the factors' higher bits dropped.
        k_max = min(self._a_depth, self._b_depth)
        wk, wa, wb = (d.bit_length() for d in (k_max, self._a_depth, self._b_depth))
        mul_x = Signal(wk)                    # kb, shifted right
        add_a = Signal(wa + wk)               # m, shifted left
        add_b = Signal(wb + wk)               # ng, shifted left
        prod_a = Signal(wa + wk)
        prod_b = Signal(wb + wk)
        over = Signal()                       # the GEMM does not fit the memories
        mul_done = Signal()                   # the multiply ended a cycle ago

        # Counters: loads and conversions (index), GEMM (group, row group, beat, slot).
        # idx is a load's write address, as wide as the longest load (a conversion counts
        # its beats with ``left`` alone; idx then wraps, unread).
        idx = Signal(range(max(self._a_depth, self._b_depth * R)))
        left = Signal(FIELD_BITS + 1)         # beats still to take from din
        left_nz = Signal()                    # left != 0
        # (A GEMM that passed the size check has m * kb <= a_depth and ng * kb <= b_depth.)
        depth = max(self._a_depth, self._b_depth)
        grp = Signal(range(self._b_depth))    # column group
        ng_m1 = Signal(range(self._b_depth))  # ng - 1
        kbi = Signal(range(depth))            # beat within the dot product
        kb_m1 = Signal(range(depth))          # kb - 1
        s = Signal(range(S))                  # slot: row within the row group
        g_last = Signal(range(S))             # the row group's last slot
        g_last0 = Signal(range(S))            # ... of the first row group
        more_rows = Signal()                  # rows of A after this row group
        more_rows0 = Signal()                 # ... after the first one
        rows_left = Signal(range(self._a_depth + 1))   # rows of A from the group's first on
        a_row = Signal(range(self._a_depth + 1))       # (m0 + s) * kb
        a_group = Signal(range(self._a_depth + 1))     # m0 * kb
        b_base = Signal(range(self._b_depth + 1))      # grp * kb
        issuing = Signal()                    # GEMM: beats left to issue
        round_start = Signal(init=1)          # s == 0
        last_s = Signal()                     # s == g_last
        last_kb = Signal()                    # kbi == kb - 1
        last_grp = Signal()                   # grp == ng - 1
        a_addr = Signal(range(self._a_depth + 1))      # a_row + kbi
        b_addr = Signal(range(self._b_depth + 1))      # b_base + kbi

        op = self.cmd.payload.op
        with m.If(take_cmd):
            p = self.cmd.payload
            m.d.sync += [cmd.eq(p), code.eq(STATUS["ok"]), idx.eq(0),
                         left.eq(p.count), left_nz.eq(p.count != 0)]
            with m.If(op == OPS["load_a"]):
                with m.If(p.count == 0):
                    m.d.sync += [code.eq(STATUS["empty"]), state.eq(_STATUS)]
                with m.Elif(p.count > self._a_depth):
                    m.d.sync += [code.eq(STATUS["too_large"]), state.eq(_STATUS)]
                with m.Else():
                    m.d.sync += state.eq(_LOAD)
            with m.Elif(op == OPS["load_b"]):
                with m.If(p.count == 0):
                    m.d.sync += [code.eq(STATUS["empty"]), state.eq(_STATUS)]
                with m.Elif(p.count > self._b_depth * R):
                    m.d.sync += [code.eq(STATUS["too_large"]), state.eq(_STATUS)]
                with m.Else():
                    m.d.sync += state.eq(_LOAD)
            with m.Elif(op == OPS["gemm"]):
                with m.If((p.m == 0) | (p.kb == 0) | (p.ng == 0)):
                    m.d.sync += [code.eq(STATUS["empty"]), state.eq(_STATUS)]
                with m.Else():
                    m.d.sync += state.eq(_CHECK)
            with m.Elif(op == OPS["convert"]):
                with m.If(~(Const(self._conv_mask, 8) >> p.conv)[0]):
                    m.d.sync += [code.eq(STATUS["bad_conv"]), state.eq(_STATUS)]
                with m.Elif(p.count == 0):
                    m.d.sync += [code.eq(STATUS["empty"]), state.eq(_STATUS)]
                with m.Else():
                    m.d.sync += state.eq(_CONV)
            with m.Else():
                m.d.sync += [code.eq(STATUS["bad_op"]), state.eq(_STATUS)]

        # The compares with the depths are registered, and so is the multiply's end: the
        # decision comes a cycle after the last addition. Outside the check the multiply's
        # registers load the command port's fields in every cycle (no hold path): the check
        # starts from the command taken.
        m.d.sync += over.eq((prod_a > self._a_depth) | (prod_b > self._b_depth)
                            | (cmd.m > self._a_depth) | (cmd.ng > self._b_depth)
                            | (cmd.kb > k_max))
        with m.If(state != _CHECK):
            p = self.cmd.payload
            m.d.sync += [mul_x.eq(p.kb), add_a.eq(p.m), add_b.eq(p.ng), prod_a.eq(0),
                         prod_b.eq(0), mul_done.eq(0)]
        with m.Else():
            # The multiply steps in every cycle of the check: once mul_x is 0 it adds
            # nothing more (the factors shift on, unread), so nothing holds its value.
            m.d.sync += [mul_done.eq(mul_x == 0), mul_x.eq(mul_x >> 1),
                         add_a.eq(add_a << 1), add_b.eq(add_b << 1)]
            with m.If(mul_x[0]):
                m.d.sync += [prod_a.eq(prod_a + add_a), prod_b.eq(prod_b + add_b)]
            with m.If(mul_done):
                with m.If(over):
                    m.d.sync += [code.eq(STATUS["too_large"]), state.eq(_STATUS)]
                with m.Else():
                    m.d.sync += [state.eq(_RUN), issuing.eq(1)]

        # The GEMM's counters start from the command register in every cycle outside a GEMM
        # (no hold path; the last one before a GEMM is the check's, with the command in it).
        with m.If(state != _RUN):
            first_rows = Mux(cmd.m > S, S - 1, cmd.m - 1)
            m.d.sync += [grp.eq(0), kbi.eq(0), s.eq(0), rows_left.eq(cmd.m), a_row.eq(0),
                         a_group.eq(0), b_base.eq(0), kb_m1.eq(cmd.kb - 1),
                         ng_m1.eq(cmd.ng - 1), g_last.eq(first_rows), g_last0.eq(first_rows),
                         more_rows.eq(cmd.m > S), more_rows0.eq(cmd.m > S),
                         round_start.eq(1), last_s.eq(cmd.m == 1), last_kb.eq(cmd.kb == 1),
                         last_grp.eq(cmd.ng == 1), a_addr.eq(0), b_addr.eq(0)]

        # --- loads ------------------------------------------------------------------------
        # Registered flags (set with the state, below): din's ready and the memories' write
        # enables start at flip-flops.
        load_a, load_b = Signal(), Signal()
        loading = load_a | load_b
        m.d.sync += [load_a.eq((state == _LOAD) & ~(cmd.op == OPS["load_b"])),
                     load_b.eq((state == _LOAD) & (cmd.op == OPS["load_b"]))]
        conv_ready = Signal()                 # a converter is selected and has credit
        m.d.comb += self.din.ready.eq((loading | conv_ready) & left_nz & ~ResetSignal("sync"))
        din_take = self.din.valid & self.din.ready
        bank = idx[:(R - 1).bit_length()] if R > 1 else 0
        m.d.comb += [a_wr.addr.eq(idx), a_wr.data.eq(self.din.payload.data),
                     a_wr.en.eq(load_a & din_take)]
        for r in range(R):
            m.d.comb += [b_wr[r].addr.eq(idx >> (R - 1).bit_length()),
                         b_wr[r].data.eq(self.din.payload.data),
                         b_wr[r].en.eq(load_b & din_take & (bank == r))]
        with m.If(din_take):
            m.d.sync += [idx.eq(idx + 1), left.eq(left - 1), left_nz.eq(left != 1)]
        with m.If((state == _LOAD) & ~left_nz):
            m.d.sync += state.eq(_STATUS)

        # --- the GEMM issue: counters -> memory read (rank 1) -> dot units -----------------
        # The dot units are paced (DotProduct(paced=True)): they take every beat, and the
        # sequencer keeps both of their rules. It spaces the rounds of a row group (one
        # beat per slot) at least loop_cycles apart, the interlock's rule, and issues only
        # while the results owed (counted from the issue) leave room in the units' result
        # FIFOs, the credit's. A beat issued too soon would read a stale accumulator and a
        # result past the count would be lost: the benches compare every result and check
        # that every command ends.
        dots = [DotProduct(N, self._accumulator, **self._dot_kwargs) for _ in range(R)]
        for r, d in enumerate(dots):
            m.submodules[f"dot{r}"] = d
        loop = self._dot.loop_cycles
        since = Signal(range(loop + 1), init=loop)   # cycles since the last issue, plus its slot
        credit = Signal()                     # owed <= out_depth - 4 (registered)
        m.d.sync += credit.eq(owed <= self._dot.out_depth - 4)
        # The sequencer's tests are flags kept beside its counters (set with them), so
        # that its next-state logic starts at flip-flops: s == 0, s == g_last,
        # kbi == kb - 1, grp == ng - 1, since == loop.
        since_full = Signal(init=1)
        # (issuing is set only in _RUN: it is the state test too)
        # A round's slot s issues at least loop cycles after the previous round's slot s. A
        # round that runs without a gap starts loop cycles after the previous one's start;
        # where the credit stops the issue inside a round (a ragged group of fewer rows than
        # loop, o backing up), its later slots come late, and the next round must start
        # loop cycles after the latest "slot s issued at t, as if started at t - s": the
        # count restarts at every issue, at s + 1 (equal to counting from the round's start
        # when there was no gap).
        issue = issuing & credit & (~round_start | since_full)
        with m.If(issue):
            m.d.sync += [since.eq(Mux(s + 1 >= loop, loop, s + 1)),
                         since_full.eq(s + 1 >= loop)]
        with m.Elif(~since_full):
            m.d.sync += [since.eq(since + 1), since_full.eq(since + 1 == loop)]
        v1 = Signal()                         # rank 1 holds a beat (memory data follows it)
        meta = Signal(data.StructLayout({"first": 1, "last": 1, "slot": range(S)}))
        # The read addresses are registers too (a_row + kbi, b_base + kbi), kept with the
        # counters: no adder between a flip-flop and a block RAM's address.
        m.d.comb += [a_rd.addr.eq(a_addr), a_rd.en.eq(1)]
        for r in range(R):
            m.d.comb += [b_rd[r].addr.eq(b_addr), b_rd[r].en.eq(1)]
        m.d.sync += [v1.eq(issue), meta.first.eq(kbi == 0), meta.last.eq(last_kb),
                     meta.slot.eq(s)]
        # Rank 2: the memories' data registered (a block RAM's read is slow: its output
        # register, where the synthesizer packs it), the beat's flags with it.
        v2 = Signal()
        meta2 = Signal.like(meta)
        # (no reset: they load in every cycle, and v2 says when they hold a beat)
        a2 = Signal(word, reset_less=True)
        b2 = [Signal(word, name=f"b2_{r}", reset_less=True) for r in range(R)]
        m.d.sync += [v2.eq(v1), meta2.eq(meta), a2.eq(a_rd.data)]
        m.d.sync += [b2[r].eq(b_rd[r].data) for r in range(R)]
        with m.If(issue):
            with m.If(~last_s):
                m.d.sync += [s.eq(s + 1), a_row.eq(a_row + cmd.kb), round_start.eq(0),
                             last_s.eq(s + 1 == g_last), a_addr.eq(a_addr + cmd.kb)]
            with m.Elif(~last_kb):                 # next beat of the same rows
                m.d.sync += [s.eq(0), kbi.eq(kbi + 1), a_row.eq(a_group), round_start.eq(1),
                             last_s.eq(g_last == 0), last_kb.eq(kbi + 1 == kb_m1),
                             a_addr.eq(a_group + kbi + 1), b_addr.eq(b_addr + 1)]
            with m.Elif(more_rows):                # next group of rows
                nxt = rows_left - S
                m.d.sync += [s.eq(0), kbi.eq(0), a_row.eq(a_row + cmd.kb),
                             a_group.eq(a_row + cmd.kb), rows_left.eq(nxt),
                             g_last.eq(Mux(nxt > S, S - 1, nxt - 1)), more_rows.eq(nxt > S),
                             round_start.eq(1), last_s.eq(nxt == 1), last_kb.eq(kb_m1 == 0),
                             a_addr.eq(a_row + cmd.kb), b_addr.eq(b_base)]
            with m.Else():                         # next group of columns, or the end
                # (after the last beat the counters move on as if to a next group, unread:
                # no counter holds its value)
                m.d.sync += [s.eq(0), kbi.eq(0), a_row.eq(0), a_group.eq(0),
                             rows_left.eq(cmd.m), g_last.eq(g_last0),
                             more_rows.eq(more_rows0), grp.eq(grp + 1),
                             b_base.eq(b_base + cmd.kb), round_start.eq(1),
                             last_s.eq(g_last0 == 0), last_kb.eq(kb_m1 == 0),
                             last_grp.eq(grp + 1 == ng_m1), a_addr.eq(0),
                             b_addr.eq(b_base + cmd.kb)]
                with m.If(last_grp):
                    m.d.sync += issuing.eq(0)
        for r, d in enumerate(dots):
            beat = d.i.payload
            m.d.comb += [
                d.i.valid.eq(v2),
                beat.a.eq(a2), beat.b.eq(b2[r]),
                beat.mode.eq(cmd.mode), beat.a_signed.eq(cmd.a_signed),
                beat.b_signed.eq(cmd.b_signed), beat.phase.eq(cmd.phase), beat.g.eq(cmd.g),
                beat.first.eq(meta2.first), beat.last.eq(meta2.last), beat.slot.eq(meta2.slot),
            ]
        result_in = issue & last_kb
        gemm_done = (state == _RUN) & ~issuing & ~v1 & ~v2

        # --- converters: din -> the selected converter -> o --------------------------------
        take = Signal()                       # the output register loads (below)
        conv_sel = Signal()
        conv_take, conv_out, conv_results = self._converters(
            m, cmd, state, left, left_nz, din_take, conv_sel, take)
        conv_credit = Signal()                # owed <= CONV_FIFO - 5 (registered)
        conv_on = Signal()                    # a converter is selected (registered as they are)
        m.d.sync += [conv_credit.eq(owed <= CONV_FIFO - 5), conv_on.eq(state == _CONV)]
        m.d.comb += [conv_sel.eq(conv_on & conv_credit), conv_ready.eq(conv_sel)]

        # --- o: GEMM results, converter results, then the status beat, through an output
        # register (the dot units' result FIFOs are block RAM: their read goes straight
        # into it) ----------------------------------------------------------------------
        rst = ResetSignal("sync")
        ov = Signal()
        od = Signal(self.output_layout(R))
        m.d.comb += take.eq(~ov | o.ready)
        src_valid = Signal()
        src = Signal(self.output_layout(R))
        m.d.comb += [o.valid.eq(ov & ~rst), o.payload.eq(od)]
        with m.If(take):
            m.d.sync += [ov.eq(src_valid), od.eq(src)]
        # The dot units have results only while a GEMM runs, the converters' FIFO only while
        # a conversion runs (a command ends when its results are out): their ready is the
        # output register's, not gated by the state (a short path into their FIFOs).
        for d in dots:
            m.d.comb += d.o.ready.eq(take)
        with m.If(state == _RUN):
            m.d.comb += src_valid.eq(dots[0].o.valid)
            for r, d in enumerate(dots):
                m.d.comb += [src.data[r].eq(d.o.payload.result),
                             src.flags[r].eq(d.o.payload.flags)]
        with m.Elif(state == _CONV):
            valid, payload = conv_out
            m.d.comb += [src_valid.eq(valid), src.eq(payload)]
        with m.Elif(state == _STATUS):
            m.d.comb += [src_valid.eq(1), src.status.eq(1),
                         src.data[0].eq(code)]
            with m.If(take):
                m.d.sync += state.eq(_IDLE)
        delivered = src_valid & take & (state != _STATUS)
        # The count of results owed lags a cycle (inc, dec registered): no path from the
        # handshakes into its adder. It is settled when both are low.
        inc, dec = Signal(), Signal()
        m.d.sync += [inc.eq(Mux(state == _RUN, result_in, conv_results)), dec.eq(delivered),
                     owed.eq(owed + inc - dec)]
        settled = (owed == 0) & ~inc & ~dec
        with m.If(gemm_done & settled):
            m.d.sync += state.eq(_STATUS)
        with m.If((state == _CONV) & ~left_nz & ~conv_take & settled):
            m.d.sync += state.eq(_STATUS)
        return m

    def _converters(self, m, cmd, state, left, left_nz, din_take, ready, take):
        """The converters on ``din``, their results queued in a FIFO that ``o`` reads while
        ``take``. The converters never stall (their outputs are always ready): a ``din``
        beat goes in only while the results owed leave room in the FIFO (a credit the
        caller computes), so their pipelines' enables are constant. ``ready``: the caller's
        credit-gated select (a beat may go in). Returns ``(taken, (valid, payload),
        results)``: a beat went into a converter this cycle, the FIFO's head as an ``o``
        beat, and whether the beat taken will produce a result."""
        C, g_bits = self.conv_lanes, self._g_bits
        make = {
            "rescale_int4_sym": lambda: RangeRescale(C, "int4_sym"),
            "rescale_uint4": lambda: RangeRescale(C, "uint4"),
            "to_fp4": lambda: LogConverter(C, g_bits),
            "from_fp4": lambda: FP4Decoder(C, g_bits),
            "track": lambda: RangeTracker(C, g_bits),
        }
        units = {name: make[name]() for name in self._converter_names}
        converting = state == _CONV
        word = self.din.payload.data
        xs = [word[16 * j:16 * j + 16] for j in range(C)]
        # What a result carries: C values and flag bytes (the tracker: 2 of each).
        res_layout = data.StructLayout({"data": data.ArrayLayout(FP16.BITS, max(C, 2)),
                                        "flags": data.ArrayLayout(FLAGS_SHAPE, max(C, 2))})
        fifo = m.submodules.conv_results = SyncFIFOBuffered(
            width=res_layout.size, depth=CONV_FIFO)
        res = Signal(res_layout)
        n_out = max(C, 2)
        terms = {"data": [0] * n_out, "flags": [0] * n_out}
        any_valid = 0
        for name, u in units.items():
            m.submodules[f"conv_{name}"] = u
            # Registered selects: the converters' inputs start at flip-flops.
            sel = Signal(name=f"sel_{name}")
            m.d.sync += sel.eq(converting & (cmd.conv == CONVERTERS[name]))
            p = u.i.payload
            m.d.comb += [u.i.valid.eq(sel & left_nz & self.din.valid & ready),
                         u.o.ready.eq(1)]
            q = u.o.payload
            if name.startswith("rescale"):
                m.d.comb += [p.s.eq(cmd.scale)] + [p.x[j].eq(xs[j]) for j in range(C)]
                fields = [(q.q[j], q.flags[j]) for j in range(C)]
            elif name == "to_fp4":
                m.d.comb += [p.g.eq(cmd.g), p.phase.eq(cmd.phase)]
                m.d.comb += [p.x[j].eq(xs[j]) for j in range(C)]
                fields = [(q.c[j], q.flags[j]) for j in range(C)]
            elif name == "from_fp4":
                m.d.comb += [p.g.eq(cmd.g), p.phase.eq(cmd.phase)]
                m.d.comb += [p.c[j].eq(word[4 * j:4 * j + 4]) for j in range(C)]
                fields = [(q.x[j], q.flags[j]) for j in range(C)]
            else:
                m.d.comb += [p.g.eq(cmd.g), p.last.eq(left == 1)]
                m.d.comb += [p.x[j].eq(xs[j]) for j in range(C)]
                fields = [(q.max, q.nan), (q.g_paper, q.g_direct)]
            # One converter runs at a time (a command ends when its results are out), so
            # the results are OR-ed, each gated by its valid.
            for j, (value, flags) in enumerate(fields):
                terms["data"][j] = terms["data"][j] | Mux(u.o.valid, value, 0)
                terms["flags"][j] = terms["flags"][j] | Mux(u.o.valid, flags, 0)
            any_valid = any_valid | u.o.valid
        for j in range(n_out):
            m.d.comb += [res.data[j].eq(terms["data"][j]), res.flags[j].eq(terms["flags"][j])]
        m.d.comb += [fifo.w_data.eq(res), fifo.w_en.eq(any_valid),
                     fifo.r_en.eq(take)]
        head = Signal(res_layout)
        out = Signal(self.output_layout(self._rows), name="conv_o")
        m.d.comb += head.eq(fifo.r_data)
        for j in range(n_out):
            m.d.comb += [out.data[j].eq(head.data[j]), out.flags[j].eq(head.flags[j])]
        track = cmd.conv == CONVERTERS["track"]
        results = din_take & converting & (~track | (left == 1))
        return din_take & converting, (fifo.r_rdy, out), results
