"""Golden-model speed: the 4-bit GEMM against NumPy's float32 matmul, same size, same run.

    .venv/bin/python -m scripts.bench [--size 512] [--repeats 9]

Times ``golden.gemm`` (backward mode: fp4 gradient codes x int4 codes, exact and fp16
accumulation) and ``A @ B`` in float32 on random operands, interleaved so that both see the
same machine load, and writes the medians and ratios to ``build/reports/bench.json``. Before
timing, it checks that the fast gemm equals the reference path bit for bit on this input.
BLAS runs on one thread (``OPENBLAS_NUM_THREADS``, unless set) for both sides: the machine
is shared, and a single thread makes the ratio steadier.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import golden  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "reports" / "bench.json")
    args = ap.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    a = rng.integers(0, 16, size=(n, n), dtype=np.uint8)      # fp4 gradient codes
    b = rng.integers(0, 16, size=(n, n), dtype=np.uint8)      # int4 weight codes
    af = rng.standard_normal((n, n)).astype(np.float32)
    bf = rng.standard_normal((n, n)).astype(np.float32)
    kw = dict(mode="backward", b_signed=True, phase="odd", g=3)

    # Bit-exactness on the benchmarked input: fast path vs the reference (flags=True) path.
    checked = {}
    for acc in ("exact", "fp16"):
        fast = golden.gemm(a, b, accumulator=acc, **kw)
        ref, _ = golden.gemm(a, b, accumulator=acc, flags=True, **kw)
        if not np.array_equal(fast, ref):
            raise SystemExit(f"bench: fast gemm ({acc}) differs from the reference path")
        checked[acc] = int(fast.size)

    runs = {"fp32": [], "exact": [], "fp16": []}
    fns = {"fp32": lambda: af @ bf,
           "exact": lambda: golden.gemm(a, b, accumulator="exact", **kw),
           "fp16": lambda: golden.gemm(a, b, accumulator="fp16", **kw)}
    for f in fns.values():                                    # warm-up
        f()
    for _ in range(args.repeats):                             # interleaved rounds
        for name, f in fns.items():
            runs[name] += _time(f, 1)
    med = {k: float(np.median(v)) for k, v in runs.items()}
    report = {
        "size": [n, n, n],
        "golden_call": "golden.gemm(a, b, mode='backward', b_signed=True, phase='odd', g=3, "
                       "accumulator=..., lanes=8)",
        "repeats": args.repeats,
        "median_s": {"fp32_matmul": med["fp32"], "gemm_exact": med["exact"],
                     "gemm_fp16acc": med["fp16"]},
        "gemm_exact_vs_fp32_ratio": med["exact"] / med["fp32"],
        "gemm_fp16acc_vs_fp32_ratio": med["fp16"] / med["fp32"],
        "target_exact_ratio": 3.0,
        "bit_exact_checked_outputs": checked,
        "numpy": np.__version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "machine": platform.machine(),
        "raw_s": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{n}^3: fp32 matmul {med['fp32'] * 1e3:.2f} ms, golden exact "
          f"{med['exact'] * 1e3:.2f} ms ({report['gemm_exact_vs_fp32_ratio']:.2f}x), golden "
          f"fp16-acc {med['fp16'] * 1e3:.1f} ms ({report['gemm_fp16acc_vs_fp32_ratio']:.1f}x)"
          f" -> {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
