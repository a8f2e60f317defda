"""numba kernels for the randomized Hadamard rotation, row by row, on 16-float vectors.

A row is rotated in a buffer that stays in L1 cache. The fast Walsh–Hadamard
transform of a window of n = 2^p coordinates (Sylvester order, H[i, j] =
(−1)^popcount(i & j)) runs on 16-float vectors: a 16-point transform inside each
vector (4 butterfly stages of lane shuffles, the random signs multiplied on the
way in), radix-8 butterflies across 8 such vectors while they are in registers,
then radix-8/4/2 passes between whole vectors for the higher bits of the index.
numba leaves plain loops of these strided butterflies scalar, so the vector steps
are written as LLVM IR (`numba.extending.intrinsic`): generic vector IR, no
CPU-specific intrinsics, lowered by LLVM for the CPU that runs it (one AVX-512
register a vector, two AVX2 ones). `turbo_kernels` builds on these.

Each row is computed alone, in a fixed order of float operations with no
reassociation (no fastmath), so results do not depend on how rows are split into
chunks or threads. The kernels release the GIL (`nogil`): callers run row chunks
on threads. `cache=True`: they are compiled once per machine (5–10 s in all, on
first use), later processes load the machine code from numba's cache (< 1 s).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # floats a vector: one AVX-512 register, two AVX2 ones

_I32 = ir.IntType(32)
_F32 = ir.FloatType()
_VF = ir.VectorType(_F32, LANES)
_BYTE_REVERSED = [8 * (i // 8) + 7 - i % 8 for i in range(LANES)]  # lane order = MSB first


def _const_vec(ty: ir.Type, values) -> ir.Constant:
    return ir.Constant(ir.VectorType(ty, len(values)), [ir.Constant(ty, v) for v in values])


def _shuffle(builder, a, b, lanes):
    return builder.shuffle_vector(a, b, _const_vec(_I32, lanes))


def _splat(builder, scalar):
    vty = ir.VectorType(scalar.type, LANES)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return _shuffle(builder, v, ir.Constant(vty, ir.Undefined), [0] * LANES)


def _fmuladd(builder, a, b, c):
    """a · b + c for b = ±1: the product is exact, so fused or not it is round(±a + c).

    x − y as fmuladd(y, −1, x) runs on the multiply-add units, x + y on the adders.
    """
    fnty = ir.FunctionType(_VF, [_VF] * 3)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fmuladd.v16f32")
    return builder.call(fn, [a, b, c])


class _Codegen:
    """An intrinsic's arguments at code generation: 1-D C arrays and integer indices."""

    def __init__(self, context, builder, sig, args):
        self.context, self.builder, self.sig, self.args = context, builder, sig, args

    def index(self, k: int):
        """Argument k as an intp."""
        return self.context.cast(self.builder, self.args[k], self.sig.args[k], types.intp)

    def at(self, index, step, t: int):
        """index + step · t (intp values, t a Python int)."""
        return self.builder.add(index, self.builder.mul(step, ir.Constant(step.type, t)))

    def plus(self, index, t: int):
        """index + t (an intp value, t a Python int)."""
        return self.builder.add(index, ir.Constant(index.type, t))

    def ptr(self, k: int, index, elem: ir.Type = _VF):
        """Pointer to element `index` of array argument k, as elem*."""
        data = self.context.make_array(self.sig.args[k])(self.context, self.builder, self.args[k])
        return self.builder.bitcast(self.builder.gep(data.data, [index]), elem.as_pointer())

    def load(self, k: int, index, elem: ir.Type = _VF, invariant: bool = False):
        """Load from array argument k.

        `invariant`: the array is never written while the kernel runs (codebooks), so
        LLVM may hoist the load out of loops.
        """
        value = self.builder.load(self.ptr(k, index, elem), align=_align(elem))
        if invariant:
            value.set_metadata("invariant.load", self.builder.module.add_metadata([]))
        return value

    def store(self, value, k: int, index):
        self.builder.store(value, self.ptr(k, index, value.type), align=_align(value.type))


def _align(ty: ir.Type) -> int:
    """float32 data is 4-byte aligned; anything else (bytes read as i16) maybe not."""
    return 4 if ty in (_F32, _VF) else 1


def _codegen(body):
    """An intrinsic's code generator running body(_Codegen); body returns a value or None."""

    def codegen(context, builder, sig, args):
        result = body(_Codegen(context, builder, sig, args))
        return context.get_dummy_value() if result is None else result

    return codegen


# --- the transform -----------------------------------------------------------------------


@intrinsic
def _wht16(typingctx, src, i, signs, j, dst, k):
    """dst[k:k+16] = H_16 (src[i:i+16] · signs[j:j+16]): 16 coordinates in registers."""
    return types.void(src, i, signs, j, dst, k), _codegen(_wht16_code)


def _wht16_code(g: _Codegen) -> None:
    b = g.builder
    v = b.fmul(g.load(0, g.index(1)), g.load(2, g.index(3)))
    g.store(_in_vector(b, v), 4, g.index(5))


def _in_vector(b, v):
    """H_16 on the lanes of v: 4 butterfly stages of shuffles."""
    for h in (1, 2, 4, 8):  # lane l pairs with l ^ h: the low lane x + y, the high one x − y
        w = _shuffle(b, v, v, [lane ^ h for lane in range(LANES)])
        sign = _const_vec(_F32, [-1.0 if lane & h else 1.0 for lane in range(LANES)])
        v = _fmuladd(b, v, sign, w)
    return v


def _across(b, v: list) -> list:
    """H on the index of the vectors v (len a power of two): butterflies between them."""
    minus = _const_vec(_F32, [-1.0] * LANES)
    v, step = list(v), 1
    while step < len(v):
        for t in range(len(v)):
            if not t & step:
                x, y = v[t], v[t + step]
                v[t], v[t + step] = b.fadd(x, y), _fmuladd(b, y, minus, x)
        step *= 2
    return v


@intrinsic
def _wht128(typingctx, src, i, signs, j, dst, k):
    """dst[k:k+128] = H_128 (src[i:i+128] · signs[j:j+128]): 8 vectors in registers."""

    def code(g: _Codegen) -> None:
        b, i, j, k = g.builder, g.index(1), g.index(3), g.index(5)
        v = [
            _in_vector(b, b.fmul(g.load(0, g.plus(i, LANES * t)), g.load(2, g.plus(j, LANES * t))))
            for t in range(8)
        ]
        for t, x in enumerate(_across(b, v)):
            g.store(x, 4, g.plus(k, LANES * t))

    return types.void(src, i, signs, j, dst, k), _codegen(code)


def _butterfly(radix_log2: int):
    """In-place radix-2^r butterflies between the vectors a[base + t·h : +16], t < 2^r.

    The bits of t are index bits of the window (h a power of two ≥ 16), so this is
    H_(2^r) on those bits, for 16 values of the bits below at once.
    """
    radix = 1 << radix_log2

    @intrinsic
    def butterfly(typingctx, a, base, h):
        return types.void(a, base, h), _codegen(butterfly_code)

    def butterfly_code(g: _Codegen) -> None:
        b, base, h = g.builder, g.index(1), g.index(2)
        ptrs = [g.ptr(0, g.at(base, h, t)) for t in range(radix)]
        v = _across(b, [b.load(p, align=4) for p in ptrs])
        for p, x in zip(ptrs, v, strict=True):
            b.store(x, p, align=4)

    return butterfly


_bfly2, _bfly4, _bfly8 = (_butterfly(r) for r in (1, 2, 3))


@intrinsic
def _scale16(typingctx, a, i, signs, j):
    """a[i:i+16] *= signs[j:j+16]."""

    def code(g: _Codegen) -> None:
        at = g.index(1)
        g.store(g.builder.fmul(g.load(0, at), g.load(2, g.index(3))), 0, at)

    return types.void(a, i, signs, j), _codegen(code)


@njit(nogil=True, cache=True)
def _wht_window(src, s_lo, dst, lo, n, signs, g_lo):
    """dst[lo:lo+n] = (src[s_lo:s_lo+n] · signs[g_lo:g_lo+n]) H_n, H_n Sylvester.

    src may be dst. Arrays are flat (1-D), addressed by offsets: no per-row views,
    whose reference counts would be atomic operations shared between threads.
    """
    if n < LANES:  # tiny windows (d < 16): plain butterflies
        for i in range(n):
            dst[lo + i] = src[s_lo + i] * signs[g_lo + i]
        h = 1
        while h < n:
            for i0 in range(lo, lo + n, 2 * h):
                for j in range(i0, i0 + h):
                    x, y = dst[j], dst[j + h]
                    dst[j], dst[j + h] = x + y, x - y
            h *= 2
        return
    h = 8 * LANES if n >= 8 * LANES else LANES  # the index bits done in registers
    for i in range(0, n, h):
        if h == LANES:
            _wht16(src, s_lo + i, signs, g_lo + i, dst, lo + i)
        else:
            _wht128(src, s_lo + i, signs, g_lo + i, dst, lo + i)
    while h < n:
        left = 0  # index bits still to transform
        while (h << left) < n:
            left += 1
        r = 2 if left == 4 else min(left, 3)  # radix 8 where it can, 4 bits as radix 4 twice
        step = h << r
        for i0 in range(lo, lo + n, step):
            for j in range(i0, i0 + h, LANES):
                if r == 3:
                    _bfly8(dst, j, h)
                elif r == 2:
                    _bfly4(dst, j, h)
                else:
                    _bfly2(dst, j, h)
        h = step


@njit(nogil=True, cache=True)
def _rotate_row(x, x_lo, d, z, z_lo, width, signs, offsets):
    """z[z_lo:z_lo+width] = x[x_lo:x_lo+d], zero-padded to width, through the windows.

    signs: the windows' n signs (scaled by 1/√n) one after the other; offsets: where
    each window starts in the row.
    """
    n = len(signs) // len(offsets)
    if len(offsets) == 1 and d == n:  # offsets[0] = 0, an int64: no literal-0 compilation
        _wht_window(x, x_lo, z, z_lo, n, signs, offsets[0])
        return
    for i in range(d):  # loops, not slice assignments: those are slow to compile
        z[z_lo + i] = x[x_lo + i]
    for i in range(d, width):
        z[z_lo + i] = 0.0
    for w in range(len(offsets)):
        lo = z_lo + offsets[w]
        _wht_window(z, lo, z, lo, n, signs, w * n)


@njit(nogil=True, cache=True)
def _rotate_back_row(y, y_lo, signs, offsets, ones):
    """y[y_lo:] = (that row) Π^T in place: windows in reverse order, each H_n, then its signs.

    `ones`: as many 1s as signs (the transform's own multiplier).
    """
    n = len(signs) // len(offsets)
    for w in range(len(offsets) - 1, -1, -1):
        lo = y_lo + offsets[w]
        _wht_window(y, lo, y, lo, n, ones, w * n)
        if n < LANES:
            for i in range(n):
                y[lo + i] *= signs[w * n + i]
        else:
            for i in range(0, n, LANES):
                _scale16(y, lo + i, signs, w * n + i)


@njit(nogil=True, cache=True)
def rotate_rows(X, signs, offsets, out):
    """out = X Π (`RandomizedHadamard.apply`): X m × d, out m × max(d, n)."""
    (rows, d), width = X.shape, out.shape[1]
    x, z = X.reshape(-1), out.reshape(-1)
    for r in range(rows):
        _rotate_row(x, r * d, d, z, r * width, width, signs, offsets)


@njit(nogil=True, cache=True)
def rotate_back_rows(Z, signs, offsets, out):
    """out = (Z Π^T)[:, :d], the inverse of `rotate_rows`: Z m × max(d, n), out m × d."""
    (rows, width), d = Z.shape, out.shape[1]
    ones = np.ones(len(signs), dtype=np.float32)
    z, o = Z.reshape(-1), out.reshape(-1)
    y = np.empty(width, dtype=np.float32)
    for r in range(rows):
        for i in range(width):
            y[i] = z[r * width + i]
        _rotate_back_row(y, np.int64(0), signs, offsets, ones)
        for i in range(d):
            o[r * d + i] = y[i]


# --- norms -------------------------------------------------------------------------------


@intrinsic
def _sum_squares(typingctx, a, n):
    """Σ a[i]² over i < n (n a multiple of 64), float32: 4 × 16 partial sums, fixed order."""
    return types.float32(a, n), _codegen(_sum_squares_code)


def _sum_squares_code(g: _Codegen):
    b, n = g.builder, g.index(1)
    accs = [cgutils.alloca_once_value(b, ir.Constant(_VF, None)) for _ in range(4)]
    with cgutils.for_range_slice(b, ir.Constant(n.type, 0), n, ir.Constant(n.type, 64)) as (i, _):
        for q, acc in enumerate(accs):
            v = g.load(0, b.add(i, ir.Constant(n.type, LANES * q)))
            b.store(b.fadd(b.load(acc), b.fmul(v, v)), acc)
    total = b.fadd(
        b.fadd(b.load(accs[0]), b.load(accs[1])), b.fadd(b.load(accs[2]), b.load(accs[3]))
    )
    s = ir.Constant(_F32, 0.0)
    for lane in range(LANES):
        s = b.fadd(s, b.extract_element(total, ir.Constant(_I32, lane)))
    return s
