"""A UART (8 data bits, no parity, 1 stop bit) as two stream components, for the board top
(:mod:`hdl.board`).

:class:`UARTRx`: ``rx`` line in, bytes out on ``o`` (a byte whose stop bit is low is
dropped and counted as a framing error on ``frame_error``). :class:`UARTTx`: bytes in on
``i``, ``tx`` line out. ``divisor`` is clock cycles per bit (``clk_hz // baud``, at least 4);
both idle high. A synchronous reset returns both to idle.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import integer

__all__ = ["UARTRx", "UARTTx"]


class _UART(wiring.Component):
    """``divisor`` (clock cycles per bit), checked; the ports come from the subclass."""

    def __init__(self, divisor):
        self._divisor = integer(divisor, "divisor", 4)
        super().__init__()

    divisor = property(lambda self: self._divisor)


class UARTRx(_UART):
    """Receiver: samples ``rx`` (synchronized by two flip-flops) in the middle of each bit.

    Members
    -------
    rx : ``In(1)``
    o : ``Out(stream.Signature(8))``
        One beat per received byte; a byte not taken before the next one completes is
        overwritten (the board top always takes it).
    frame_error : ``Out(1)``
        High for one cycle when a stop bit was low.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    frame_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(d + d // 2 + 1))
        bits = Signal(range(10))
        shift = Signal(8)
        busy = Signal()
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.frame_error.eq(0)
        with m.If(~busy):
            with m.If(~line):                         # a start bit: sample bit 0 at 1.5 bits
                m.d.sync += [busy.eq(1), timer.eq(d + d // 2 - 1), bits.eq(0)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits < 8):
            m.d.sync += [shift.eq((line << 7) | (shift >> 1)), bits.eq(bits + 1),
                         timer.eq(d - 1)]
        with m.Else():                                # the stop bit
            m.d.sync += busy.eq(0)
            with m.If(line):
                m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += self.frame_error.eq(1)
        return m


class UARTTx(_UART):
    """Transmitter: a start bit, 8 data bits LSB first, a stop bit.

    Members
    -------
    i : ``In(stream.Signature(8))``
    tx : ``Out(1)``
    """

    i: In(stream.Signature(8))
    tx: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        frame = Signal(10, init=0x3FF)                # stop, data, start (LSB first)
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq((1 << 9) | (self.i.payload << 1)), left.eq(10),
                         timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq((1 << 9) | (frame >> 1)), left.eq(left - 1),
                             timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
