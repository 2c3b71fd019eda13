"""The board top: the training engine behind a UART frame protocol.

See :class:`BoardTop`; the host side is ``verif/board_protocol.py`` (used by the simulated
board bench and by ``scripts/board.py`` on a serial port alike).
"""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .engine import TrainingEngine
from .params import integer
from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "SYNC", "FRAME", "ERRORS"]

SYNC = 0xA5
#: Frame types: host -> board (``cmd``, ``data``) and board -> host (``out``, ``error``).
FRAME = {"cmd": 0x01, "data": 0x02, "out": 0x81, "error": 0xEE}
#: Error codes of an ``error`` frame (one payload byte).
ERRORS = {"bad_type": 1, "bad_length": 2, "bad_checksum": 3, "timeout": 4, "framing": 5}

_IDLE, _TYPE, _LEN, _BODY, _SUM, _SEND, _SKIP = range(7)


def _bytes(width):
    return (width + 7) // 8


class BoardTop(wiring.Component):
    """:class:`hdl.engine.TrainingEngine` behind a UART (8N1, ``clk_hz // baud`` cycles per
    bit).

    Frames, both ways: ``0xA5, type, length, payload[length], checksum`` with the checksum
    the XOR of ``type``, ``length`` and the payload. Multi-byte values are little-endian:
    a payload is the engine port's payload bits from bit 0.

    - Host -> board: ``cmd`` (0x01; the engine's ``cmd`` payload, ``cmd_bytes`` bytes) and
      ``data`` (0x02; one ``din`` word, ``din_bytes`` bytes).
    - Board -> host: ``out`` (0x81; one ``o`` beat, ``out_bytes`` bytes: results, then each
      command's status beat) and ``error`` (0xEE; one byte, :data:`ERRORS`).

    Errors: an unknown type (``bad_type``) or a length that is not the type's
    (``bad_length``) is answered at once and the rest of the frame is skipped until the line
    has been idle for ``timeout`` cycles; a checksum that does not match (``bad_checksum``)
    drops the frame; a frame cut off (no byte for ``timeout`` cycles inside a frame:
    ``timeout``) is dropped; a byte with a low stop bit raises ``framing``. A dropped frame
    reaches the engine not at all, so the engine stays usable. Bytes outside a frame (before
    a sync byte) are ignored. The host sends a command and its data words, then waits for
    the command's status beat (the board buffers ``rx_depth`` bytes).

    Members: ``rx`` (in), ``tx`` (out); clock ``clk``, reset ``rst`` (synchronous).
    """

    rx: In(1, init=1)
    tx: Out(1)

    def __init__(self, clk_hz=25_000_000, baud=1_000_000, *, engine=None, timeout=None,
                 rx_depth=64):
        self._clk_hz = integer(clk_hz, "clk_hz", 1)
        self._baud = integer(baud, "baud", 1)
        self._divisor = self._clk_hz // self._baud
        if self._divisor < 4:
            raise ValueError(f"clk_hz // baud must be at least 4 (cycles per bit), not "
                             f"{self._divisor}; lower baud")
        self._engine_kwargs = dict(engine or {})
        self.engine = TrainingEngine(**self._engine_kwargs)
        self._timeout = integer(timeout if timeout is not None else 40 * self._divisor,
                                "timeout", 20 * self._divisor)
        self._rx_depth = integer(rx_depth, "rx_depth", 4)
        super().__init__()

    clk_hz = property(lambda self: self._clk_hz)
    baud = property(lambda self: self._baud)
    divisor = property(lambda self: self._divisor)
    timeout = property(lambda self: self._timeout)

    @property
    def cmd_bytes(self):
        return _bytes(self.engine.cmd.payload.shape().size)

    @property
    def din_bytes(self):
        return _bytes(self.engine.din.payload.shape().size)

    @property
    def out_bytes(self):
        return _bytes(self.engine.o.payload.shape().size)

    @property
    def module_name(self):
        return f"board_{self.engine.module_name}_d{self._divisor}"

    def elaborate(self, platform):
        m = Module()
        e = m.submodules.engine = self.engine
        rx = m.submodules.uart_rx = UARTRx(self._divisor)
        tx = m.submodules.uart_tx = UARTTx(self._divisor)
        fifo = m.submodules.rx_fifo = SyncFIFOBuffered(width=8, depth=self._rx_depth)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     fifo.w_data.eq(rx.o.payload), fifo.w_en.eq(rx.o.valid),
                     rx.o.ready.eq(1)]

        # --- receive: parse frames from the byte FIFO into the engine's cmd and din -------
        body_bytes = max(self.cmd_bytes, self.din_bytes)
        state = Signal(range(7))
        ftype = Signal(8)
        need = Signal(8)                      # payload bytes of this frame's type
        got = Signal(range(body_bytes + 1))
        body = Signal(8 * body_bytes)
        check = Signal(8)
        idle = Signal(range(self._timeout + 1))      # cycles since the last byte
        err = Signal(8)                       # error code to send (0: none)
        byte = fifo.r_data
        take = fifo.r_rdy & (state != _SEND)
        m.d.comb += fifo.r_en.eq(take)
        with m.If(take):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        # a frame cut off: no byte for `timeout` cycles inside a frame
        with m.If((state != _IDLE) & (state != _SEND) & (state != _SKIP)
                  & (idle == self._timeout - 1) & ~take):
            m.d.sync += [state.eq(_IDLE), err.eq(ERRORS["timeout"])]
        # (If/Elif rather than Switch: the generated Verilog then has no $pmux functions,
        # which Icarus 11 cannot compile)
        with m.If(take & (state == _IDLE)):
            with m.If(byte == SYNC):
                m.d.sync += state.eq(_TYPE)
        with m.Elif(take & (state == _TYPE)):
            m.d.sync += [ftype.eq(byte), check.eq(byte), got.eq(0)]
            with m.If(byte == FRAME["cmd"]):
                m.d.sync += [state.eq(_LEN), need.eq(self.cmd_bytes)]
            with m.Elif(byte == FRAME["data"]):
                m.d.sync += [state.eq(_LEN), need.eq(self.din_bytes)]
            with m.Else():
                m.d.sync += [state.eq(_SKIP), err.eq(ERRORS["bad_type"])]
        with m.Elif(take & (state == _LEN)):
            m.d.sync += check.eq(check ^ byte)
            with m.If(byte == need):
                m.d.sync += state.eq(_BODY)
            with m.Else():
                m.d.sync += [state.eq(_SKIP), err.eq(ERRORS["bad_length"])]
        with m.Elif(take & (state == _BODY)):
            m.d.sync += [check.eq(check ^ byte), got.eq(got + 1),
                         body.eq(body | (byte << (8 * got)))]
            with m.If(got + 1 == need):
                m.d.sync += state.eq(_SUM)
        with m.Elif(take & (state == _SUM)):
            with m.If(byte == check):
                m.d.sync += state.eq(_SEND)
            with m.Else():
                m.d.sync += [state.eq(_IDLE), err.eq(ERRORS["bad_checksum"])]
        with m.If(state == _TYPE):
            m.d.sync += body.eq(0)
        with m.If((state == _SKIP) & (idle == self._timeout)):
            m.d.sync += state.eq(_IDLE)
        # deliver a checked frame to the engine
        is_cmd = ftype == FRAME["cmd"]
        m.d.comb += [e.cmd.payload.eq(body[:e.cmd.payload.shape().size]),
                     e.din.payload.eq(body[:e.din.payload.shape().size]),
                     e.cmd.valid.eq((state == _SEND) & is_cmd),
                     e.din.valid.eq((state == _SEND) & ~is_cmd)]
        with m.If(((state == _SEND) & is_cmd & e.cmd.ready)
                  | ((state == _SEND) & ~is_cmd & e.din.ready)):
            m.d.sync += state.eq(_IDLE)
        with m.If(rx.frame_error & (err == 0)):
            m.d.sync += err.eq(ERRORS["framing"])

        # --- send: o beats and error codes as frames -----------------------------------
        out_bytes = self.out_bytes
        frame_len = out_bytes + 4               # sync, type, length, payload, checksum
        buf = Signal(8 * frame_len)             # the frame, byte 0 lowest
        left = Signal(range(frame_len + 1))
        payload = Signal(8 * out_bytes)
        m.d.comb += payload.eq(e.o.payload.as_value())
        csum = Const(FRAME["out"] ^ out_bytes, 8)
        for k in range(out_bytes):
            csum = csum ^ payload[8 * k:8 * k + 8]
        err_frame = Signal(8 * 5)
        m.d.comb += err_frame.eq(SYNC | (FRAME["error"] << 8) | (1 << 16) | (err << 24)
                                 | ((FRAME["error"] ^ 1 ^ err) << 32))
        sending = left != 0
        m.d.comb += [tx.i.payload.eq(buf[:8]), tx.i.valid.eq(sending),
                     e.o.ready.eq(~sending & (err == 0))]
        with m.If(tx.i.valid & tx.i.ready):
            m.d.sync += [buf.eq(buf >> 8), left.eq(left - 1)]
        with m.If(~sending):
            with m.If(err != 0):
                m.d.sync += [buf.eq(err_frame), left.eq(5), err.eq(0)]
            with m.Elif(e.o.valid):
                m.d.sync += [buf.eq(SYNC | (FRAME["out"] << 8) | (out_bytes << 16)
                                    | (payload << 24) | (csum << (24 + 8 * out_bytes))),
                             left.eq(frame_len)]
        return m

