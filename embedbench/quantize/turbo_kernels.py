"""numba kernels for TurboQuant_mse: rotate, normalise, quantize and pack a row at a time.

Encoding reads each input row once: it is rotated in an L1 buffer (`wht_kernels`),
scaled to a unit vector, and every 16 coordinates of a k-bit group are quantized
in vector IR: the sign, the magnitude index #{t_j < |u|} over the group's positive
Lloyd–Max boundaries by a binary search (k − 1 comparisons, each boundary picked by
the bits found before), and the k bit planes (sign, Gray bits) as 16-bit comparison
masks, stored straight into the code bytes with the lanes reversed in each byte
(MSB first, as np.packbits). Values, boundary semantics and
byte layout are `turbo._Group`'s. Decoding reads the planes back as masks, picks
each level by a tree of selects, adds the QJL term (prod) and rotates back. Groups
whose planes do not start on a byte (odd sizes) are coded bit by bit, with the same
arithmetic. Arrays are passed flat with row offsets, as in `wht_kernels`.
"""

from __future__ import annotations

import itertools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from embedbench.quantize.wht_kernels import (
    _BYTE_REVERSED,
    _F32,
    _VF,
    LANES,
    _Codegen,
    _codegen,
    _rotate_back_row,
    _rotate_row,
    _shuffle,
    _splat,
    _sum_squares,
)

_MASK = ir.VectorType(ir.IntType(1), LANES)
_PLANE = ir.IntType(16)  # a plane's 16 bits of 16 coordinates
_I32V = ir.VectorType(ir.IntType(32), LANES)


def _quantizer(k: int):
    """Codes of 16 coordinates with a k-bit group, stored as k plane slices of 2 bytes.

    u = z[i:i+16] · inv, the positive boundaries cuts[c:c+2^(k−1)−1]; plane p goes
    to code[b + p·stride : +2], p = 0 the signs (1: u > 0), then the Gray bits of
    the magnitude index, most significant first.
    """

    @intrinsic
    def quantize(typingctx, z, i, inv, cuts, c, code, b, stride):
        return types.void(z, i, inv, cuts, c, code, b, stride), _codegen(quantize_code)

    half = 1 << (k - 1)

    def quantize_code(g: _Codegen) -> None:
        bld, c, b, stride = g.builder, g.index(4), g.index(6), g.index(7)
        v = g.load(0, g.index(1))
        v = _shuffle(bld, v, v, _BYTE_REVERSED)  # lane 8q + t holds bit 7 − t of byte q
        u = bld.fmul(v, _splat(bld, g.args[2]))
        masks = [bld.fcmp_ordered(">", u, ir.Constant(_VF, None))]
        if k > 1:
            a = bld.and_(
                bld.bitcast(u, _I32V), _splat(bld, ir.Constant(ir.IntType(32), 0x7FFFFFFF))
            )
            a = bld.bitcast(a, _VF)  # |u|
            cuts = [_splat(bld, g.load(3, g.plus(c, j), _F32, True)) for j in range(half - 1)]
            # the magnitude index m = #{t_j < |u|} bit by bit, most significant first: a
            # binary search, its next boundary picked by the bits found so far
            bits = []
            for level in range(k - 1):
                step = half >> (level + 1)  # boundaries t_(step), t_(3 step), ... (1-based)
                options = [cuts[j - 1] for j in range(step, half, 2 * step)]
                for bit in reversed(bits):  # options[prefix]: pick by the prefix bits
                    pairs = zip(options[::2], options[1::2], strict=True)
                    options = [bld.select(bit, hi, lo) for lo, hi in pairs]
                bits.append(bld.fcmp_ordered(">", a, options[0]))
            masks.append(bits[0])  # Gray code: m ^ (m >> 1)
            masks += [bld.xor(hi, lo) for hi, lo in itertools.pairwise(bits)]
        for p, mask in enumerate(masks):
            g.store(bld.bitcast(mask, _PLANE), 5, g.at(b, stride, p))

    return quantize


_quantize1, _quantize2, _quantize3, _quantize4 = (_quantizer(k) for k in (1, 2, 3, 4))


def _dequantizer(k: int):
    """z[i:i+16] = the values of 16 k-bit codes read from their planes (`_quantizer`'s).

    levels[c + g] is the positive level of Gray code g. The value is ±levels[gray],
    picked by a tree of selects on the plane bits: no table look-up, no gather.
    """

    @intrinsic
    def dequantize(typingctx, code, b, stride, levels, c, z, i):
        return types.void(code, b, stride, levels, c, z, i), _codegen(dequantize_code)

    def dequantize_code(g: _Codegen) -> None:
        bld, b, stride, c = g.builder, g.index(1), g.index(2), g.index(4)
        masks = [bld.bitcast(g.load(0, g.at(b, stride, p), _PLANE), _MASK) for p in range(k)]
        values = [
            _splat(bld, g.load(3, g.plus(c, gray), _F32, True)) for gray in range(1 << (k - 1))
        ]
        for bit in range(k - 1):  # Gray bit `bit` is plane k − 1 − bit
            mask = masks[k - 1 - bit]
            values = [
                bld.select(mask, hi, lo) for lo, hi in zip(values[::2], values[1::2], strict=True)
            ]
        v = bld.select(masks[0], values[0], bld.fneg(values[0]))
        g.store(_shuffle(bld, v, v, _BYTE_REVERSED), 5, g.index(6))

    return dequantize


_dequantize1, _dequantize2, _dequantize3, _dequantize4 = (_dequantizer(k) for k in (1, 2, 3, 4))


@njit(nogil=True, cache=True)
def _code_scalar(u, k, cuts, c):
    """The k-bit code of one unit coordinate u (boundaries cuts[c:]): sign, Gray magnitude."""
    a = abs(u)
    m = 0
    for j in range((1 << (k - 1)) - 1):
        if a > cuts[c + j]:
            m += 1
    return (int(u > 0) << (k - 1)) | (m ^ (m >> 1))


@njit(nogil=True, cache=True)
def encode_rows(X, signs, offsets, groups, cuts, out):
    """TurboQuant_mse codes of the rows of X (m × d float32) into out (m × bytes, uint8).

    signs, offsets: the rotation (`wht_kernels.rotate_rows`); groups: a row per
    group (first coordinate, coordinates, bits k, first bit in the code); cuts: a
    row per group, its positive boundaries (float32, padded).
    """
    (rows, d), size, width = X.shape, out.shape[1], cuts.shape[1]
    x, code, cuts = X.reshape(-1), out.reshape(-1), cuts.reshape(-1)  # flat: no row views
    padded = -(-max(d, len(signs) // len(offsets)) // 64) * 64
    z = np.zeros(padded, dtype=np.float32)  # zero past d, for the sum of squares
    need_norm, total_bits = False, 0
    for g in range(len(groups)):
        need_norm |= groups[g, 2] > 1  # one bit: the sign of z is that of the direction
        total_bits += groups[g, 1] * groups[g, 2]
    for r in range(rows):  # (np.int64(0), not a literal 0: one compilation of _rotate_row)
        _rotate_row(x, r * d, d, z, np.int64(0), d, signs, offsets)
        inv = np.float32(1.0)
        if need_norm:
            ss = _sum_squares(z, padded)
            inv = np.float32(1.0 / np.sqrt(np.float64(ss))) if ss > 0 else np.float32(0.0)
        base = r * size
        if total_bits % 8:
            code[base + size - 1] = 0  # the padding bits
        for g in range(len(groups)):
            col, ng, k, off = groups[g, 0], groups[g, 1], groups[g, 2], groups[g, 3]
            c0, fast = g * width, 0
            if off % 8 == 0 and ng % 8 == 0:  # planes start on bytes: 16 coordinates a step
                fast = ng // LANES * LANES
                for c in range(0, fast, LANES):
                    b = base + off // 8 + c // 8
                    if k == 1:
                        _quantize1(z, col + c, inv, cuts, c0, code, b, ng // 8)
                    elif k == 2:
                        _quantize2(z, col + c, inv, cuts, c0, code, b, ng // 8)
                    elif k == 3:
                        _quantize3(z, col + c, inv, cuts, c0, code, b, ng // 8)
                    else:
                        _quantize4(z, col + c, inv, cuts, c0, code, b, ng // 8)
            for c in range(fast, ng):  # the rest bit by bit
                q = _code_scalar(z[col + c] * inv, k, cuts, c0)
                for p in range(k):
                    pos = off + p * ng + c
                    bit = np.uint8(0x80 >> (pos & 7))
                    if (q >> (k - 1 - p)) & 1:
                        code[base + (pos >> 3)] |= bit
                    else:
                        code[base + (pos >> 3)] &= ~bit


@njit(nogil=True, cache=True)
def decode_rows(codes, signs, offsets, groups, levels, qjl, out):
    """TurboQuant decode: the groups' levels, plus qjl[r] for prod, rotated back into out.

    codes m × bytes (uint8); levels: a row per group, the positive level of each Gray
    code (float32, padded); qjl m × d float32 in rotated coordinates, or m × 0 (MSE).
    """
    (rows, d), size, width = out.shape, codes.shape[1], levels.shape[1]
    code, y, levels = codes.reshape(-1), out.reshape(-1), levels.reshape(-1)
    q, with_qjl = qjl.reshape(-1), qjl.shape[1] > 0
    ones = np.ones(len(signs), dtype=np.float32)
    for r in range(rows):
        base, row = r * size, r * d
        if len(groups) == 0:
            for i in range(d):
                y[row + i] = 0.0
        for g in range(len(groups)):
            col, ng, k, off = groups[g, 0], groups[g, 1], groups[g, 2], groups[g, 3]
            c0, fast = g * width, 0
            if off % 8 == 0 and ng % 8 == 0:
                fast = ng // LANES * LANES
                for c in range(0, fast, LANES):
                    b = base + off // 8 + c // 8
                    if k == 1:
                        _dequantize1(code, b, ng // 8, levels, c0, y, row + col + c)
                    elif k == 2:
                        _dequantize2(code, b, ng // 8, levels, c0, y, row + col + c)
                    elif k == 3:
                        _dequantize3(code, b, ng // 8, levels, c0, y, row + col + c)
                    else:
                        _dequantize4(code, b, ng // 8, levels, c0, y, row + col + c)
            for c in range(fast, ng):
                v = 0
                for p in range(k):
                    pos = off + p * ng + c
                    v = (v << 1) | ((code[base + (pos >> 3)] >> (7 - (pos & 7))) & 1)
                level = levels[c0 + (v & ((1 << (k - 1)) - 1))]
                y[row + col + c] = level if v >> (k - 1) else -level
        if with_qjl:
            for i in range(d):
                y[row + i] += q[row + i]
        _rotate_back_row(y, row, signs, offsets, ones)
