"""The one stream pipeline of the project: register ranks between two ``lib.stream`` ports.

Every unit with a stream interface runs its valid/ready side through :class:`Pipeline`, and
every register rank of every unit (the rounder's register points included) is made by
:func:`rank` or :func:`register`. Stage data travels as ``amaranth.lib.data`` views: a
rank built from ``{"sign": s, "mag": m}`` is a ``StructLayout`` register read back as
``r.sign``, ``r.mag``. :func:`bundle` builds the same view without a register, so that a
formal harness can chain a unit's stage functions combinationally.

Three ways to advance:

- elastic (default): rank ``k`` loads when it is empty or rank ``k + 1`` loads. Ready flows
  back combinationally; under backpressure the ranks fill up before ``i.ready`` drops.
- lockstep: every rank loads together while the output rank is free (``~o.valid |
  o.ready``). One enable, no ready chain: the long pipelines (dot units) use it, and a unit
  whose datapath has no valid bit of its own (a pipelined rounder) takes the same enable.
- credit (``credit = N``): the ranks never stop (no enable at all: nothing fans out to
  every register), and results queue in an output FIFO (:class:`ResultFIFO`, block RAM
  where the FPGA has it). A beat that will produce a result goes in only while fewer than
  ``N`` results are owed (in flight or queued), so the FIFO never overflows; backpressure
  on ``o`` stops the input once ``N`` results wait. The fast dot units use it. With
  ``paced`` the source keeps that count itself (the GEMM engine does): no count here, and
  ``i.ready`` is high outside reset.

All: a synchronous reset empties every rank (and the FIFO), and while ``rst`` is high
``i.ready`` and ``o.valid`` are held low, so no beat is accepted or delivered during reset
(what was "accepted" and "delivered" means the same on both sides of a reset). Proven on the
primitive and on each unit by the ``stream_hold_*`` harnesses in ``verif/formal/streams.py``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["Pipeline", "ResultFIFO", "register", "rank", "bundle", "layout_of"]


def _shape(value):
    return value.shape() if isinstance(value, data.View) else Value.cast(value).shape()


def _fields(values):
    """A dict of values, or a struct view (a rank passed on to the next rank), as a dict."""
    if isinstance(values, data.View):
        return {name: values[name] for name, _ in values.shape()}
    return values


def layout_of(values):
    """The ``StructLayout`` of a dict of values (or a struct view): one field per key."""
    return data.StructLayout({key: _shape(v) for key, v in _fields(values).items()})


def register(m, en, value, name, *, init=None):
    """A register of ``value``'s shape (a view keeps its layout) that loads ``value`` while
    ``en``. Data registers have no reset (``init=None``); a valid bit passes ``init=0``."""
    if init is None:
        r = Signal(_shape(value), name=name, reset_less=True)
    else:
        r = Signal(_shape(value), name=name, init=init)
    with m.If(en):
        m.d.sync += r.eq(value)
    return r


def rank(m, en, values, name):
    """A register rank from a dict of values (or a struct view): a ``StructLayout`` view
    loading while ``en``."""
    values = _fields(values)
    r = Signal(layout_of(values), name=name, reset_less=True)
    with m.If(en):
        m.d.sync += [r[key].eq(v) for key, v in values.items()]
    return r


def bundle(m, values, name):
    """The view :func:`rank` would register, driven combinationally (no register)."""
    values = _fields(values)
    r = Signal(layout_of(values), name=name)
    m.d.comb += [r[key].eq(v) for key, v in values.items()]
    return r


class ResultFIFO(wiring.Component):
    """First-word-fall-through FIFO of ``depth`` entries: a memory of ``depth - 1`` entries
    with a synchronous read port (block RAM where the FPGA has it), then an output register.

    The ports and their behaviour are those of ``amaranth.lib.fifo.SyncFIFOBuffered``
    (``w_data``, ``w_en``, ``w_rdy``; ``r_data``, ``r_en``, ``r_rdy``; ``level``; a write
    with ``w_rdy`` low is dropped, a read with ``r_rdy`` low does nothing; a word written
    into an empty FIFO is on ``r_data`` two cycles later). The difference is timing: the
    memory's "not empty" and "not full" flags are flip-flops, set from the level by
    equalities a cycle ahead, so no path runs through the level's comparisons (the library
    FIFO's path from its level through ``r_en`` to the output register set the clock of
    the 8-lane dot unit on iCE40: measured with ``make synth``).

    Invariants (``verif/formal/streams.py``): ``any == (inner level != 0)``, ``room ==
    (inner level != depth - 1)``, ``level == inner level + r_rdy``.
    """

    def __init__(self, width, depth):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"ResultFIFO depth must be an integer >= 2, not {depth!r}")
        self._width, self._depth = width, depth
        super().__init__({"w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
                          "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
                          "level": Out(range(depth + 1))})
        #: Words in the memory, and its two registered flags (``inner_level != 0`` and
        #: ``inner_level != depth - 1``), for formal harnesses.
        self.inner_level = Signal(range(depth))
        self.inner_any = Signal()
        self.inner_room = Signal(init=1)

    @property
    def width(self):
        return self._width

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        n = self._depth - 1                         # the memory's entries
        inner, any_, room = self.inner_level, self.inner_any, self.inner_room
        do_write = self.w_en & room
        do_read = any_ & (~self.r_rdy | self.r_en)
        m.d.comb += [self.w_rdy.eq(room), self.level.eq(inner + self.r_rdy)]
        m.d.sync += [
            inner.eq(inner + do_write - do_read),
            any_.eq(Mux(do_write, 1, Mux(do_read, inner != 1, any_))),
            room.eq(Mux(do_read, 1, Mux(do_write, inner != n - 1, room))),
        ]

        def step(ptr):
            return Mux(ptr == n - 1, 0, ptr + 1) if n & (n - 1) else (ptr + 1)[:len(ptr)]

        storage = m.submodules.storage = Memory(shape=self._width, depth=n, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="sync")
        produce = Signal(range(n))
        consume = Signal(range(n))
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data),
                     w_port.en.eq(do_write),
                     r_port.addr.eq(consume), r_port.en.eq(do_read),
                     self.r_data.eq(r_port.data)]
        with m.If(do_write):
            m.d.sync += produce.eq(step(produce))
        with m.If(do_read):
            m.d.sync += consume.eq(step(consume))
        with m.If(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(do_read):
            m.d.sync += self.r_rdy.eq(1)
        return m


class Pipeline:
    """Valid/ready control of ``depth`` register ranks between stream ports ``i`` and ``o``.

    ``take[k]`` is rank ``k``'s load enable and ``valid[k]`` its valid bit; the unit loads
    its data registers with ``take[k]`` (:meth:`rank`, :meth:`register`) and drives
    :attr:`payload` (``o.payload``, or the FIFO's input in credit mode) from the last rank's
    registers. ``ends`` (credit mode) is the condition on the input beat under which it
    produces a result (default: every beat does). ``keep`` maps a rank to a condition and-ed
    into the valid bit it loads: a rank that swallows beats (an accumulator passes on only
    the ``last`` beat of a dot product or tensor). ``lockstep`` selects the advance rule (see
    the module docstring). ``i.ready = take[0] & ~rst`` and ``o.valid = valid[-1] & ~rst``.

    ``admit`` is an interlock on the way in: while it is low the beat on ``i`` waits
    (``i.ready`` low) and rank 0 loads a bubble. It may depend on ``i.payload`` and on the
    ranks' registers (the interleaved dot unit holds back a beat whose slot has an addition
    in flight); nothing inside the pipeline ever waits for it, so it adds no logic to the
    enables.
    """

    def __init__(self, m, i, o, depth, *, lockstep=False, credit=0, keep=None, admit=None,
                 ends=None, paced=False, name="stage"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if credit and lockstep:
            raise ValueError("credit and lockstep are two different modes: choose one")
        if paced and not credit:
            raise ValueError("paced is a form of credit mode: give credit = N too")
        keep = keep or {}
        room = None
        self._m = m
        self.depth = depth
        self.lockstep = lockstep
        self.valid = [Signal(name=f"{name}{k}_valid") for k in range(depth)]
        rst = ResetSignal("sync", allow_reset_less=True)
        self.credit = credit
        self.payload = o.payload
        if credit:
            self.take = [Const(1)] * depth
            self.payload = Signal(o.payload.shape(), name=f"{name}_out", reset_less=True)
            width = Shape.cast(o.payload.shape()).width
            # One spare entry: the FIFO's memory can be full while its output register is
            # still empty; N owed results then always fit.
            fifo = m.submodules[f"{name}_fifo"] = ResultFIFO(width, credit + 1)
            m.d.comb += [fifo.w_data.eq(self.payload), fifo.w_en.eq(self.valid[-1]),
                         o.payload.eq(fifo.r_data), fifo.r_en.eq(o.ready & ~rst)]
            self.fifo = fifo
            o_valid = fifo.r_rdy
        if credit and not paced:
            owed = Signal(range(credit + 1), name=f"{name}_owed")
            result_in = Signal(name=f"{name}_result_in")
            m.d.comb += result_in.eq(1 if ends is None else ends)
            # The count lags a cycle behind the accepted results (``fresh``), so that no
            # path runs from i.valid through the counter's adder; room counts them in.
            took = o.valid & o.ready
            fresh = Signal(name=f"{name}_fresh")
            # The comparisons of the count are registered too, computed from the count by
            # equalities (no carry chain), so that i.ready starts at two flip-flops.
            at_limit = Signal(name=f"{name}_at_limit")                   # owed >= N
            near_limit = Signal(name=f"{name}_near_limit", init=credit == 1)  # >= N - 1
            inc, dec = fresh & ~took, took & ~fresh

            def at_least(k):                  # owed >= k; owed never exceeds N
                return Const(1) if k <= 0 else Cat(owed == j for j in range(k, credit + 1)).any()

            m.d.sync += [fresh.eq(self.accept_signal(name) & result_in),
                         owed.eq(owed + fresh - took),
                         at_limit.eq(Mux(inc, at_least(credit - 1),
                                         Mux(dec, 0, at_least(credit)))),
                         near_limit.eq(Mux(inc, at_least(credit - 2),
                                           Mux(dec, at_least(credit), at_least(credit - 1))))]
            self.owed, self.fresh = owed, fresh
            self.at_limit, self.near_limit = at_limit, near_limit
            full = Mux(fresh, near_limit, at_limit)
            room = ~result_in | ~full
        if lockstep:
            en = Signal(name=f"{name}_en")
            m.d.comb += en.eq(~self.valid[-1] | o.ready)
            self.take = [en] * depth
        elif not credit:
            self.take = [Signal(name=f"{name}{k}_take") for k in range(depth)]
            nxt = o.ready
            for k in reversed(range(depth)):
                m.d.comb += self.take[k].eq(~self.valid[k] | nxt)
                nxt = self.take[k]
        if not credit:
            o_valid = self.valid[-1]
        accept = self.accept_signal(name)       # a beat enters rank 0 this cycle
        ready = self.take[0] & ~rst
        if room is not None:
            ready = ready & room
        #: ``i.ready`` without the ``admit`` interlock (what the interlock ANDs into).
        self.open = Signal(name=f"{name}_open")
        m.d.comb += self.open.eq(ready)
        if admit is not None:
            ready = self.open & admit
        m.d.comb += [i.ready.eq(ready), o.valid.eq(o_valid & ~rst),
                     accept.eq(i.valid & i.ready)]
        prev = self.accept
        for k in range(depth):
            with m.If(self.take[k]):
                m.d.sync += self.valid[k].eq(prev & keep.get(k, 1))
            prev = self.valid[k]

    def accept_signal(self, name):
        if not hasattr(self, "accept"):
            self.accept = Signal(name=f"{name}_accept")
        return self.accept

    @property
    def fifo_latency(self):
        """Extra cycles of the output FIFO (credit mode): from the last rank's write to the
        beat on ``o``."""
        return 2 if self.credit else 0

    @property
    def en(self):
        """The one enable of a lockstep pipeline (every rank's ``take``; constant 1 in credit
        mode)."""
        if not (self.lockstep or self.credit):
            raise AttributeError("an elastic pipeline has one enable per rank: use take[k]")
        return self.take[0]

    def rank(self, k, values, name):
        """Rank ``k``'s registers for a dict of values, as a ``StructLayout`` view."""
        return rank(self._m, self.take[k], values, name)

    def register(self, k, value, name):
        """Rank ``k``'s register for one value (a view keeps its layout)."""
        return register(self._m, self.take[k], value, name)
