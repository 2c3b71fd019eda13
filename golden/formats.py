"""The one table of number formats and flag bits.

Every other module -- the golden model, the hardware generators and the testbenches -- reads
its constants from here; no number below is restated anywhere else.

Formats (``docs/numerics.md``, Formats)::

    int4      two's complement   -8 .. 7     weights
    int4_sym  two's complement   -7 .. 7     SAWB weights (symmetric subset)
    uint4     unsigned            0 .. 15    activations after ReLU (PACT)
    fp4       s e2 e1 e0         0, +-4^(e-4) for e = 1..7      gradients (radix 4)
    fp16      IEEE 754 binary16  s eeeee ffffffffff             accumulation

Flags are one byte per result. The low five bits use Berkeley SoftFloat's layout so that
results compare directly with TestFloat vectors; bit 5 is this project's own::

    bit 0  0x01  inexact     the result is not the exact value
    bit 1  0x02  underflow   tiny (detected after rounding) and inexact
    bit 2  0x04  overflow    rounded to +-Inf because the value exceeds fp16's range
    bit 4  0x10  invalid     NaN operand, Inf - Inf, 0 * Inf, invalid scale
    bit 5  0x20  saturated   a conversion clamped a value to its format's extreme
"""

from dataclasses import dataclass

__all__ = [
    "IntFormat", "INT4", "INT4_SYM", "UINT4", "INT_FORMATS",
    "FP4", "FP16", "PHASES",
    "FLAG_INEXACT", "FLAG_UNDERFLOW", "FLAG_OVERFLOW", "FLAG_INVALID", "FLAG_SATURATED",
    "FLAG_NAMES", "G_RANGE", "G_BITS_MIN", "G_BITS_MAX", "GRADSCALE_HI_LOG2",
    "GRADSCALE_LO_LOG2", "ROUNDINGS", "R_BITS_MAX", "MODES", "ACCUMULATORS", "FUSED_LSB_EXP",
]


@dataclass(frozen=True)
class IntFormat:
    """A 4-bit integer format: ``name``, code width, value range, signedness."""

    name: str
    bits: int
    qmin: int
    qmax: int
    signed: bool


INT4 = IntFormat("int4", 4, -8, 7, True)
INT4_SYM = IntFormat("int4_sym", 4, -7, 7, True)
UINT4 = IntFormat("uint4", 4, 0, 15, False)
INT_FORMATS = {f.name: f for f in (INT4, INT4_SYM, UINT4)}


class FP4:
    """Radix-4 fp4: sign bit, 3-bit exponent code ``e``; value ``+-4**(e - EXP_BIAS)``.

    ::

        bit   3    2  1  0
            [ s | e2 e1 e0 ]     e = 0: zero (both signs); e = 1..7: +-4^(e-4)
    """

    BITS = 4
    EXP_BITS = 3
    RADIX_LOG2 = 2            # radix 4 = 2**2: one exponent step is two binary places
    EXP_BIAS = 4              # value = 4**(e - 4)
    EXP_MIN = 1               # smallest non-zero exponent code: 4**-3 = 1/64
    EXP_MAX = 7               # largest: 4**3 = 64
    SIGN_BIT = 3
    ZERO = 0b0000             # the only zero code a unit produces
    # Product with an integer: (int << RADIX_LOG2*(e - EXP_MIN)) in units of 2**-PRODUCT_FRAC.
    PRODUCT_FRAC = RADIX_LOG2 * (EXP_BIAS - EXP_MIN)   # = 6: 4**-3 = 2**-6
    PRODUCT_SHIFT_MAX = RADIX_LOG2 * (EXP_MAX - EXP_MIN)  # = 12
    # Level boundaries (docs/numerics.md, Log converter): between 4**(k-1) and 4**k the
    # midpoint is 5/8 * 4**k; between 0 and 4**-3 it is 2**-7.  MID_NUM/MID_DEN = 5/8.
    MID_NUM = 5
    MID_DEN_LOG2 = 3
    ZERO_MID_LOG2 = -7


class FP16:
    """IEEE 754 binary16 field layout::

        bit  15   14 .. 10    9 .. 0
           [ s | exponent | fraction ]      bias 15, subnormals at exponent 0
    """

    BITS = 16
    EXP_BITS = 5
    FRAC_BITS = 10
    BIAS = 15
    EXP_MAX_FIELD = 0x1F
    EMIN = 1 - BIAS           # -14: exponent of the smallest normal
    EMAX = EXP_MAX_FIELD - 1 - BIAS  # 15
    SIG_BITS = FRAC_BITS + 1  # 11, hidden bit included
    SIGN_MASK = 0x8000
    MAG_BITS = BITS - 1       # 15: the code without its sign; orders like the magnitude
    MAG_MASK = (1 << MAG_BITS) - 1   # 0x7FFF
    EXP_MASK = 0x7C00
    FRAC_MASK = 0x03FF
    INF = 0x7C00
    QNAN = 0x7E00             # the canonical quiet NaN every unit produces
    MAX_FINITE = 0x7BFF       # code of the largest finite value
    MAX_VALUE = 65504.0       # its value: (2 - 2**-10) * 2**15
    # The smallest subnormal is 2**-24: every fp16 value is an integer multiple of it.
    LSB_EXP = EMIN - FRAC_BITS  # -24


PHASES = {"even": 0, "odd": 1}

FLAG_INEXACT = 0x01
FLAG_UNDERFLOW = 0x02
FLAG_OVERFLOW = 0x04
FLAG_INVALID = 0x10
FLAG_SATURATED = 0x20
FLAG_NAMES = {
    FLAG_INEXACT: "inexact", FLAG_UNDERFLOW: "underflow", FLAG_OVERFLOW: "overflow",
    FLAG_INVALID: "invalid", FLAG_SATURATED: "saturated",
}

# --- Ranges and option sets of the golden API and of the units' parameters ---------------

# GradScale exponent g: a value ``y`` is carried as ``y * 2**g``. The golden model accepts
# G_RANGE; a unit holds g in a signed register of g_bits, G_BITS_MIN .. G_BITS_MAX bits:
# at least -32 .. 31, at most what the golden model can check (-256 .. 255).
G_RANGE = (-256, 256)
G_BITS_MIN = 6
G_BITS_MAX = (G_RANGE[1] - 1).bit_length() + 1          # 9
# GradScale's target window for m = max|x| * 2**g: (2**LO, 2**HI], HI the top fp4 level (64).
GRADSCALE_HI_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS)     # 6
GRADSCALE_LO_LOG2 = GRADSCALE_HI_LOG2 - 1                             # 5
# Range-rescale rounding: nearest-even, or stochastic with an r_bits-bit random integer.
ROUNDINGS = ("rne", "stochastic")
R_BITS_MAX = 32
# Dot products: forward (int x int) or backward (fp4 x int); fp16 (the paper) or exact sums.
MODES = ("forward", "backward")
ACCUMULATORS = ("fp16", "exact")

# The fused FP16 baseline's fixed point: every finite fp16 product is an integer multiple of
# 2**-48 (two subnormal LSBs, 2**-24 each); its largest product is below 2**22 * 2**10.
FUSED_LSB_EXP = 2 * FP16.LSB_EXP
