"""The host side of the board protocol (:class:`hdl.board.BoardTop`): frames over a byte
transport. The same code drives a serial port (``scripts/board.py``, pyserial) and the
simulated board (``verif/tb_board.py``, a UART model in cocotb): a transport is any object
with ``write(data: bytes)`` and ``read(n: int) -> bytes`` (raising ``TimeoutError`` when the
board says nothing)."""

import numpy as np

from hdl.board import ERRORS, FRAME, SYNC
from hdl.engine import STATUS

from streams import Packer

__all__ = ["frame", "BoardError", "BoardHost"]

ERROR_NAMES = {v: k for k, v in ERRORS.items()}
STATUS_NAMES = {v: k for k, v in STATUS.items()}


class BoardError(RuntimeError):
    """The board answered with an error frame, or with something that is not a frame."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def frame(ftype, payload):
    """``0xA5, type, length, payload, checksum`` (the XOR of type, length and payload)."""
    payload = bytes(payload)
    check = ftype ^ len(payload)
    for b in payload:
        check ^= b
    return bytes([SYNC, ftype, len(payload)]) + payload + bytes([check])


class BoardHost:
    """Commands to the engine on the board, results back. ``engine``: the board's engine
    (for its payload layouts); ``transport``: see the module docstring."""

    def __init__(self, transport, engine, cmd_bytes, din_bytes, out_bytes):
        self.t = transport
        self.pcmd = Packer(engine.cmd.payload.shape())
        self.pout = Packer(engine.o.payload.shape())
        self.cmd_bytes, self.din_bytes, self.out_bytes = cmd_bytes, din_bytes, out_bytes
        self.status_bit = self.pout.fields["status"][0]

    @classmethod
    def of(cls, transport, board):
        return cls(transport, board.engine, board.cmd_bytes, board.din_bytes,
                   board.out_bytes)

    def read_frame(self):
        """The next frame from the board: ``(type, payload)``; bytes before a sync byte are
        skipped. A bad checksum raises :class:`BoardError`."""
        while self.t.read(1)[0] != SYNC:
            pass
        ftype, length = self.t.read(2)
        payload = self.t.read(length) if length else b""
        check = ftype ^ length
        for b in payload:
            check ^= b
        if self.t.read(1)[0] != check:
            raise BoardError(f"frame 0x{ftype:02x} from the board has a bad checksum")
        return ftype, payload

    def send_command(self, fields, words=()):
        cmd = self.pcmd.pack(n=1, **{k: np.array([v]) for k, v in fields.items()})[0]
        self.t.write(frame(FRAME["cmd"], cmd.to_bytes(self.cmd_bytes, "little")))
        for w in words:
            self.t.write(frame(FRAME["data"], int(w).to_bytes(self.din_bytes, "little")))

    def results(self):
        """Result beats up to the command's status beat: ``(status name, beats)`` with the
        beats unpacked (``data``, ``flags``) or None. An error frame raises
        :class:`BoardError` with its code."""
        beats = []
        while True:
            ftype, payload = self.read_frame()
            if ftype == FRAME["error"]:
                code = payload[0]
                raise BoardError(f"board error: {ERROR_NAMES.get(code, code)}", code)
            if ftype != FRAME["out"] or len(payload) != self.out_bytes:
                raise BoardError(f"unexpected frame 0x{ftype:02x} of {len(payload)} bytes")
            v = int.from_bytes(payload, "little")
            if v >> self.status_bit & 1:
                code = v & 0xFFFF
                return (STATUS_NAMES.get(code, code),
                        self.pout.unpack(beats) if beats else None)
            beats.append(v)

    def run(self, commands):
        """Each ``(fields, words)`` in turn: send it, wait for its status. Returns one dict
        per command (``status``, ``beats``), as ``engine_driver.EnginePorts.run`` does."""
        out = []
        for fields, words in commands:
            self.send_command(fields, words)
            status, beats = self.results()
            out.append({"status": status, "beats": beats})
        return out
