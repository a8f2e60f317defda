"""Decoding faiss RaBitQ codes with extended bits (`RaBitQ<k>`, 2 ≤ k ≤ 9).

faiss's `sa_decode` of such a code reads only its sign bits and 1-bit factors (faiss
1.15, `RaBitQuantizer::decode_core`), so a decoded `RaBitQ4` vector is the `RaBitQ`
one while the code is four times larger. Its search uses every bit. This decoder
gives the reconstruction that search implies, read from faiss's source
(github.com/facebookresearch/faiss, `faiss/impl/RaBitQuantizer.cpp`,
`RaBitQuantizerMultiBit.cpp`, `utils/rabitq_simd.h` `ip_scalar`) and checked against
the installed faiss: with float queries (qb = 0) the index's score equals
<q, decode(code)> + f_add_ex − <c, r̂> to float rounding.

Code layout of one vector at dimension d with ex = k − 1 extra bits (inner product):
[sign bits: ⌈d/8⌉ bytes, bit j of byte j/8 LSB first, 1 when r_j = x_j − c_j > 0]
[3 float32: ‖r‖² − ‖x‖² term, dp multiplier, error bound]
[ex-bit codes: ⌈d·ex/8⌉ bytes, coordinate j's ex bits at bit j·ex, LSB first]
[2 float32: f_add_ex = <c, r>, f_rescale_ex = ‖r‖ / Σ(m_j + ½)|r_j|/‖r‖].
faiss stores m_j = min(⌊t·|r_j|/‖r‖ + 10⁻⁵⌋, 2^ex − 1) (t its optimal scale) for r_j ≥
0 and its complement 2^ex − 1 − m_j for r_j < 0; the search scores <q − c,
f_rescale_ex · ((s_j · 2^ex) + e_j − (2^ex − ½))> = <q − c, r̂> with r̂_j =
f_rescale_ex · sign(r_j) · (m_j + ½) (for r_j = 0 exactly, sign bit 0 and level 0:
−f_rescale_ex · (2^ex − ½), as faiss's search takes it). Inner-product metric only
(under L2 faiss stores another f_rescale_ex): other metrics are refused. So the
decoded vector is c + r̂, scaled, as the 1-bit decode is, so that <r̂, r> = ‖r‖² (the
inner product is estimated without bias), and the per-document term <c, r − r̂> of the
search is, as with one bit, not part of a decoded vector.
"""

from __future__ import annotations

import numpy as np

SIGN_FACTORS = 12  # SignBitFactorsWithError: three float32 (multi-bit layout)
EX_FACTORS = 8  # ExtraBitsFactors: f_add_ex, f_rescale_ex


def extra_bits(codec) -> int:
    """Extra bits a dimension of a faiss RaBitQ index (0 for 1-bit RaBitQ)."""
    return int(codec.rabitq.nb_bits) - 1


def decode_rabitq(codec, codes: np.ndarray) -> np.ndarray:
    """c + r̂ for every code of a faiss IndexRaBitQ / IndexRaBitQFastScan, every bit used."""
    import faiss

    d, ex = int(codec.d), extra_bits(codec)
    if codec.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError("decode_rabitq reads inner-product RaBitQ codes only")
    if ex < 1:
        raise ValueError("decode_rabitq is for RaBitQ with more than 1 bit a dimension")
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n_sign, n_ex = -(-d // 8), -(-(d * ex) // 8)
    size = n_sign + SIGN_FACTORS + n_ex + EX_FACTORS
    if codes.ndim != 2 or codes.shape[1] != size:
        raise ValueError(f"RaBitQ{ex + 1} codes at d={d} are n × {size} bytes, got {codes.shape}")
    center = faiss.vector_to_array(codec.center)
    c = center if center.size else np.zeros(d, np.float32)
    sign = np.unpackbits(codes[:, :n_sign], axis=1, bitorder="little")[:, :d]
    start = n_sign + SIGN_FACTORS
    bits = np.unpackbits(codes[:, start : start + n_ex], axis=1, bitorder="little")
    bits = bits[:, : d * ex].reshape(len(codes), d, ex).astype(np.int32)
    extra = (bits << np.arange(ex, dtype=np.int32)).sum(axis=2)
    levels = (sign.astype(np.int32) << ex) + extra  # (s·2^ex + e) − (2^ex − ½) below
    factors = np.ascontiguousarray(codes[:, start + n_ex :]).view("<f4")
    rescale = factors[:, 1:2].astype(np.float32)
    r_hat = rescale * (levels.astype(np.float32) - np.float32((1 << ex) - 0.5))
    return (r_hat + c).astype(np.float32)
