"""The host side of the board (``make bitstream``): random GEMMs over a serial port, every
result checked against the golden model.

    python -m scripts.board --port /dev/ttyUSB0 --board ulx3s-25 [--gemms 20] [--seed 0]

The protocol code is ``verif/board_protocol.py``, the same code the simulated board bench
(``verif/tb_board.py``) runs through a UART model; :func:`check_gemms` is what both run.
Prints the results checked, the first mismatch if any, and the throughput over the link.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "verif"))

import golden  # noqa: E402

__all__ = ["SerialTransport", "check_gemms", "main"]


class SerialTransport:
    """A pyserial port as the protocol's transport (``write``, ``read`` with a timeout)."""

    def __init__(self, port, baud, timeout=2.0):
        import serial
        self.s = serial.Serial(port, baud, timeout=timeout)

    def write(self, data):
        self.s.write(bytes(data))

    def read(self, n):
        got = self.s.read(n)
        if len(got) < n:
            raise TimeoutError(f"the board sent {len(got)} of {n} bytes")
        return got


def check_gemms(host, engine, rng, n, log=print, compare=None):
    """``n`` random GEMMs (every mode, ragged shapes, tiled over the memories) through ``host``
    (a :class:`board_protocol.BoardHost`), each against :func:`golden.gemm` with flags
    (also handed to ``compare(got, expected)`` when given: a bench's scoreboard).
    Returns ``(outputs checked, mismatches, first mismatch or None, MACs)``."""
    from engine_driver import gemm_commands, gemm_results
    from tb_engine import random_gemm
    checked = bad = macs = 0
    first = None
    for i in range(n):
        m = int(rng.integers(1, engine.slots * 2 + 2))
        k = int(rng.integers(1, 3 * engine.lanes))
        n_cols = int(rng.integers(1, 3 * engine.rows + 1))
        a, b, ctx = random_gemm(rng, m, k, n_cols)
        cmds, tiles = gemm_commands(engine, a, b, ctx)
        done = host.run(cmds)
        statuses = [d["status"] for d in done]
        if statuses != ["ok"] * len(done):
            raise RuntimeError(f"GEMM {i}: the board answered {statuses}")
        c, f = gemm_results(engine, done, tiles, m, n_cols)
        want, want_f = golden.gemm(a, b, accumulator=engine.accumulator, lanes=engine.lanes,
                                   flags=True, **ctx)
        got = c | f << 16
        exp = want.astype(np.int64) | want_f.astype(np.int64) << 16
        if compare is not None:
            compare(got, exp)
        wrong = np.argwhere(got != exp)
        if len(wrong) and first is None:
            i0, j0 = wrong[0]
            first = {"gemm": i, "row": int(i0), "col": int(j0), "got": int(got[i0, j0]),
                     "expected": int(exp[i0, j0]), "context": ctx}
        checked += got.size
        bad += len(wrong)
        macs += m * k * n_cols
        log(f"gemm {i}: {m}x{k}x{n_cols} {ctx['mode']}: {got.size} outputs, "
            f"{len(wrong)} wrong")
    return checked, bad, first, macs


def main(argv=None):
    from board_protocol import BoardHost

    from scripts.bitstream import BOARDS, board_top
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-25")
    ap.add_argument("--gemms", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    _, top = board_top(args.board)
    host = BoardHost.of(SerialTransport(args.port, top.baud), top)
    start = time.perf_counter()
    checked, bad, first, macs = check_gemms(host, top.engine,
                                            np.random.default_rng(args.seed), args.gemms)
    seconds = time.perf_counter() - start
    print(f"{checked} outputs checked, {bad} mismatches; {macs} MACs in {seconds:.2f} s "
          f"over the link ({macs / seconds:.0f} MAC/s, the UART at {top.baud} baud sets it)")
    if first:
        print(f"first mismatch: {first}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
