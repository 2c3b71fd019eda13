"""Interleaved accumulation, shared by the stream dot units (:class:`hdl.dot.DotProduct`
and the FP16 baselines of :mod:`hdl.baselines`): per-slot state, the input interlock that
keeps a slot's beat out while its previous addition is in flight, and the interleaved fp16
accumulator loop (a pipelined :class:`hdl.fp16.FP16AddCore` and a memory of accumulators).

A unit that mixes in :class:`Interleaved` calls :meth:`Interleaved._setup_slots` in its
constructor, builds its :class:`hdl.pipeline.Pipeline` with :meth:`Interleaved._pipeline`,
records its side ranks (``first``, ``last``, ``slot``) with :meth:`Interleaved._side`, and
ends with :meth:`Interleaved._fp16_loop` (or its own accumulator) and
:meth:`Interleaved._interlock`.
"""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import data, memory

from golden.formats import FP16

from .fp16 import FP16AddCore
from .params import FP16_FLAGS, integer, pack_flags, positive_int, unpack_flags
from .pipeline import Pipeline, bundle

__all__ = ["SlotStore", "Interleaved"]


class SlotStore:
    """Per-slot state of an interleaved unit: a register for one slot, else a memory
    (``amaranth.lib.memory``) with a synchronous write port and a read port that is
    combinational, or synchronous with ``sync_read`` (then the data of the address given in
    one cycle comes in the next, held while ``en`` is low; block RAM on iCE40, LUT RAM on
    ECP5). A slot's state is only read after its ``first`` beat wrote it."""

    def __init__(self, m, name, shape, slots, *, sync_read=False):
        self._slots = slots
        if slots == 1:
            if sync_read:
                raise ValueError("a one-slot store is a register: it has no sync read")
            self._reg = Signal(shape, name=name)
        else:
            mem = m.submodules[name] = memory.Memory(shape=shape, depth=slots, init=[])
            self._rd = mem.read_port(domain="sync" if sync_read else "comb")
            self._wr = mem.write_port()

    def read(self, m, addr, en=None):
        """The state of slot ``addr``; ``en``: the sync read port's enable."""
        if self._slots == 1:
            return self._reg
        m.d.comb += self._rd.addr.eq(addr)
        if en is not None:
            m.d.comb += self._rd.en.eq(en)
        return self._rd.data

    def write(self, m, addr, value, en):
        if self._slots == 1:
            with m.If(en):
                m.d.sync += self._reg.eq(value)
        else:
            m.d.comb += [self._wr.addr.eq(addr), self._wr.data.eq(value), self._wr.en.eq(en)]


class Interleaved:
    """Mixin: ``slots`` independent accumulators fed beat by beat (see the module docstring).

    Members set by :meth:`_setup_slots`: ``slots``, ``acc_stages`` (register ranks inside the
    fp16 accumulator's adder), ``out_depth`` (0: lockstep ranks; N: credit mode with an
    N-result output FIFO) and ``loop_cycles``.
    """

    def _setup_slots(self, slots, acc_stages, out_depth, *, fp16_loop=True, paced=False):
        """Check and keep the interleaving parameters; ``fp16_loop``: the accumulator is the
        pipelined fp16 adder (its loop takes ``acc_stages + 2`` cycles when pipelined);
        ``paced``: the source paces the beats (it spaces each slot's beats ``loop_cycles``
        apart and never has more than ``out_depth`` results owed), so the unit has neither
        the input interlock nor the credit check (credit mode only)."""
        self._slots = positive_int(slots, "slots")
        if not isinstance(paced, bool):
            raise TypeError(f"paced must be a bool, not {paced!r}")
        self._paced = paced
        points = len(FP16AddCore.points())
        acc_stages = integer(acc_stages, "acc_stages", 0, points + 1 if fp16_loop else points)
        self._fp16_loop_unit = fp16_loop
        loop = acc_stages + 2 if acc_stages and fp16_loop else 1
        if self._slots < loop:
            raise ValueError(f"slots must be at least the accumulator loop's {loop} cycles "
                             f"(acc_stages + 2 with a pipelined adder), so that round-robin "
                             f"beats never wait, not {self._slots}; raise slots or lower "
                             f"acc_stages")
        self._acc_stages = acc_stages
        # Past the adder's own register points, one more rank registers the accumulator
        # store's read (its data then leaves a register, not a block RAM's slow output).
        self._adder_stages = min(acc_stages, points)
        self._read_rank = acc_stages > points     # then slots >= 19 (checked above)
        self._out_depth = integer(out_depth, "out_depth", 0)
        if paced and not self._out_depth:
            raise ValueError("paced=True needs out_depth > 0: a paced source counts the "
                             "results owed against the output FIFO of credit mode")

    @staticmethod
    def _slot_field(fields, slots):
        """``fields`` with a ``slot`` field when ``slots > 1``, as a ``StructLayout``."""
        if slots > 1:
            fields = {**fields, "slot": range(slots)}
        return data.StructLayout(fields)

    @property
    def slots(self):
        return self._slots

    @property
    def acc_stages(self):
        return self._acc_stages

    @property
    def out_depth(self):
        return self._out_depth

    @property
    def loop_cycles(self):
        """Cycles of the fp16 accumulator loop: the least beat spacing within one slot."""
        if not self._fp16_loop_unit or not self._acc_stages:
            return 1
        return self._acc_stages + 2

    @property
    def paced(self):
        return self._paced

    def _pipeline(self, m, depth, keep_rank, last_in, ends):
        """The unit's pipeline: lockstep, or credit mode with ``out_depth`` results queued;
        rank ``keep_rank`` passes on only the beats with ``last_in``; an interlock
        (:meth:`_interlock`) when ``slots > 1`` and the unit is not paced. Returns
        ``(pipe, admit)``."""
        admit = Signal(name="admit") if self._slots > 1 and not self._paced else None
        pipe = Pipeline(m, self.i, self.o, depth, lockstep=not self._out_depth,
                        credit=self._out_depth, ends=ends, keep={keep_rank: last_in},
                        admit=admit, paced=self._paced)
        self._sides = {}
        return pipe, admit

    def _interlock(self, m, pipe, beat, admit):
        """Admit a beat only when no beat of its slot is fewer than ``loop_cycles`` ranks
        ahead. The ranks move together, so a beat accepted now reaches the accumulator read
        exactly as many ranks behind that beat as it is now, and the read must come after
        that beat's write, ``loop_cycles`` ranks later. ``busy`` has a bit per slot: set when
        the slot's beat enters rank 0, cleared when it leaves rank ``loop_cycles - 2``; with
        at most one beat per slot in that window (``first`` beats wait too) one bit is
        enough, and ``i.ready`` depends on the beat only through one read of ``busy``. Each
        bit is set from its own slot's decode (``slot == k``, not ready's read of ``busy``):
        the same function, with no multiplexer of the whole map in the set path."""
        window = self.loop_cycles - 1
        if not window:
            m.d.comb += admit.eq(1)
            return
        n = self._slots
        busy = Signal(n)
        leaving = self._sides[window - 1]
        taking = self.i.valid & pipe.open
        enter = Cat(taking & (beat.slot == k) & ~busy[k] for k in range(n))
        leave = Mux(pipe.en & pipe.valid[window - 1], (Const(1, n) << leaving.slot)[:n], 0)
        m.d.sync += busy.eq((busy | enter) & ~leave)
        m.d.comb += admit.eq(~busy.bit_select(beat.slot, 1))

    def _side(self, pipe, k, values, name):
        """Rank ``k``'s side registers (first, last, slot, ...), remembered by rank."""
        self._sides[k] = pipe.rank(k, values, name)
        return self._sides[k]

    def _carry(self, side):
        """The per-beat values that ride along the tail ranks."""
        keys = ("first", "last", "slot") if self._slots > 1 else ("first", "last")
        return {k: side[k] for k in keys}

    def _output(self, m, pipe, result, flags, side):
        with m.If(pipe.en):
            m.d.sync += [pipe.payload.result.eq(result), pipe.payload.flags.eq(flags)]
            if self._slots > 1:
                m.d.sync += pipe.payload.slot.eq(side.slot)

    def _fp16_loop(self, m, pipe, chunk, chunk_flags, flow, c, last_in):
        """The interleaved fp16 accumulator from rank ``c``, which holds the beat's fp16 sum
        ``chunk`` with its ``chunk_flags`` and the side rank ``flow`` (recorded with
        :meth:`_side`, as rank ``c - 1``'s). Drives the output rank."""
        # The loop: acc[slot] read (registered into the chunk rank when the adder is
        # pipelined), the adder's D ranks, acc[slot] written at their end.
        # Only the flags an fp16 operation raises are stored: the other bits of the byte are
        # then constant 0 rather than a value the store feeds back to itself.
        acc_layout = data.StructLayout({"acc": FP16.BITS, "flags": bin(FP16_FLAGS).count("1")})
        accs = SlotStore(m, "accumulators", acc_layout, self._slots,
                         sync_read=self._read_rank)
        # A first beat adds -0 (exact: the chunk itself) and starts from no flags.
        reader = self._sides[c - 1] if self._acc_stages else flow
        if self._read_rank:
            if c - 2 not in self._sides:
                raise ValueError(f"acc_stages={self._acc_stages} reads the accumulator store "
                                 f"two ranks before the adder, and this unit's beat sum comes "
                                 f"out of rank {c}; add ranks before it (more lanes, "
                                 f"mul_stages) or use acc_stages <= {self._adder_stages}")
            # Read a rank early (rank c - 2's slot) into the store's own register, which
            # moves with the ranks: its data belongs to rank c - 1's beat, as a
            # combinational read of rank c - 1's slot would, one cycle later in the loop.
            old = accs.read(m, self._sides[c - 2]["slot"], en=pipe.take[c - 1])
        else:
            old = accs.read(m, reader["slot"] if self._slots > 1 else 0)
        operand = {"acc": Mux(reader["first"], FP16.SIGN_MASK, old.acc),
                   "flags": Mux(reader["first"], 0, unpack_flags(old.flags))}
        if self._acc_stages:
            operand = pipe.rank(c, operand, "acc_old")
        add = m.submodules.accumulator = FP16AddCore(stages=self._adder_stages)
        m.d.comb += [add.a.eq(operand["acc"]), add.b.eq(chunk)]
        loop = {**self._carry(flow), "flags": operand["flags"] | chunk_flags}
        for k in range(self._adder_stages):
            loop = self._side(pipe, c + 1 + k, loop, f"a{k}_side")
        if self._adder_stages:
            m.d.comb += add.en.eq(pipe.en)
        new = {"acc": add.result, "flags": loop["flags"] | add.flags}
        end = c + self._adder_stages
        accs.write(m, loop["slot"] if self._slots > 1 else 0,
                   Cat(new["acc"], pack_flags(new["flags"])), pipe.en & pipe.valid[end])
        m.d.comb += last_in.eq(loop["last"])
        self._output(m, pipe, new["acc"], new["flags"], bundle(m, loop, "out_side"))

