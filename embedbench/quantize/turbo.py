"""TurboQuant (`turbo<b>`, `turbo<b>-prod`): a random rotation, then Lloyd–Max per coordinate.

Zandieh, Daliri, Hadian, Mirrokni (2025), "TurboQuant: Online Vector Quantization
with Near-optimal Distortion Rate", arXiv 2504.19874. Data-oblivious: nothing is
fitted on data, the codebooks depend only on d and the bit width.

- TurboQuant_mse (Section 3.1, Algorithm 1): rotate the unit vector x by a random
  orthogonal Π; each coordinate of Πx then follows the density
  f_d(x) = Γ(d/2) / (√π Γ((d−1)/2)) · (1 − x²)^((d−3)/2) on [−1, 1]
  (x = 2B − 1 with B ~ Beta((d−1)/2, (d−1)/2); close to N(0, 1/d) for large d), and
  distinct coordinates are nearly independent, so each is quantized on its own with
  the Lloyd–Max (MSE-optimal scalar) codebook for f_d; dequantization is Π^T of the
  centroids. The theorem's distortion E‖x − x̃‖² for unit x is ≈ 0.36, 0.117, 0.03,
  0.009 at b = 1, 2, 3, 4 (the Gaussian Lloyd–Max values 0.3634, 0.1175, 0.03454,
  0.009497; `expected_mse` gives the exact value for each d).
- TurboQuant_prod (Section 3.2, Algorithm 2): the (b−1)-bit TurboQuant_mse, then
  QJL on the residual r = x − x̃_mse: one bit sign(S r) a coordinate, S a d × d
  matrix of i.i.d. N(0, 1), and γ = ‖r‖. x̃ = x̃_mse + √(π/2)/d · γ · S^T sign(S r)
  is an unbiased estimator of x for inner products: E⟨y, x̃⟩ = ⟨y, x⟩ for any y.
  The MSE quantizer alone is biased (by 2/π at b = 1). b = 1 is QJL alone.
- Fractional widths (b + 0.5): the paper's outlier-channel split, two coordinate
  groups with different widths. After the rotation every coordinate has the same
  law, so half of them (the first ⌊d/2⌋ rotated coordinates) get b + 1 bits and
  the rest b, each group with its own Lloyd–Max codebook for f_d.

The rotation Π is the project's randomized Hadamard (`RandomizedHadamard`,
orthogonal for every d: one window for a power of two, three overlapping ones
otherwise), its signs drawn from `seed` on a stream of its own (so a `hadamard`
transform before the code, drawn from the same seed, is an independent rotation);
S (prod) is drawn from `seed` too, from another stream. The QJL step is done in
the rotated coordinates (S applied to Πr, and Π^T once at the end): S Π^T is
again a matrix of i.i.d. N(0, 1), so this is the paper's estimator with another
Gaussian matrix, and saves one rotation.

Speed: TurboQuant_mse encoding and every decode run in numba kernels
(`turbo_kernels`), a row at a time: rotated, normalised, quantized and packed in
L1 cache, so the input is read once. The prod encode keeps the numpy path below
(`_Group.encode`): its cost is the dense QJL product S r.
"""

from __future__ import annotations

import math
import os

import numpy as np

from embedbench.quantize.codes import BLOCK, Code, parallel_rows, row_blocks
from embedbench.quantize.hadamard import RandomizedHadamard
from embedbench.quantize.lloyd_max import Codebook, coordinate_density, lloyd_max

__all__ = ["MSE_BITS", "PROD_BITS", "Codebook", "TurboQuant", "coordinate_density", "lloyd_max"]
from embedbench.quantize.transforms import DEFAULT_SEED

MSE_BITS = (1, 1.5, 2, 2.5, 3, 3.5, 4)  # widths of `turbo<b>`
PROD_BITS = (1, 2, 3, 4)  # total widths of `turbo<b>-prod` (b − 1 MSE bits + 1 QJL bit)
GAMMA_BYTES = 2  # the prod variant's residual norm γ, float16, after the packed bits
_PI_STREAM = 0x50  # Π's signs from default_rng((seed, _PI_STREAM)): not a `hadamard` transform's
_S_STREAM = 0x51  # S is drawn from default_rng((seed, _S_STREAM)), apart from Π's signs


def expected_mse(d: int, bits: float) -> float:
    """E‖x − x̃‖² of TurboQuant_mse for a unit x in R^d, from the density (no sampling).

    A fractional width b + 0.5 averages the b + 1 bit group (⌊d/2⌋ coordinates) and
    the b bit group (the rest).
    """
    groups = _groups(d, bits)
    return sum(n * lloyd_max(d, k).mse for n, k in groups) / d


def _groups(d: int, bits: float) -> list[tuple[int, int]]:
    """(coordinates, width) of each coordinate group, in storage order."""
    k = math.floor(bits)
    if bits == k:
        return [(d, k)]
    return [(d // 2, k + 1), (d - d // 2, k)]


# --- coordinate groups: sign and Gray-coded magnitude as bit planes ------------------------


class _Group:
    """A run of rotated coordinates sharing one k-bit codebook, coded as k bit planes.

    A coordinate's k bits are its sign (1: positive) and the index of its magnitude
    among the 2^(k−1) positive centroids, Gray-coded, most significant first. The
    magnitude index is #{positive boundaries t_j < |z|}; Gray bit i is the XOR of
    the comparisons |z| > t_j over j ≡ 2^i (mod 2^(i+1)), so encoding is a few
    vectorised comparisons and XORs per boundary (no search, no table look-up), and
    the planes pack with one np.packbits. Boundary semantics: a value on a boundary
    takes the level nearer 0; 0 itself is coded as −c_1 (sign bit 0, magnitude 0).
    Decoding reads a table of the 2^k code values.
    """

    def __init__(self, book: Codebook, cols: slice, offset: int):
        self.book, self.cols, self.k = book, cols, book.bits
        self.n = cols.stop - cols.start
        self.offset = offset  # first bit of this group's planes in the code
        half = 1 << (self.k - 1)
        self.cuts = book.boundaries[half:].astype(np.float32)  # t_1 < ... < t_{half−1}
        # planes[p] for p = 1..k−1: Gray bit k−1−p of the magnitude, from comparisons j
        self.xor_sets = [
            [j for j in range(1, half) if j % (1 << (i + 1)) == 1 << i]
            for i in range(self.k - 2, -1, -1)
        ]
        # the value of each k-bit code (sign bit first, then the Gray code)
        gray = np.arange(half) ^ (np.arange(half) >> 1)
        positive = book.centroids[half:]
        table = np.empty(2 * half)
        table[half + gray] = positive
        table[gray] = -positive
        self.table = table.astype(np.float32)

    @property
    def bits(self) -> int:
        return self.n * self.k

    def encode(self, U: np.ndarray, planes: np.ndarray, tmp: np.ndarray) -> None:
        """Bit planes (m × k × n bool view) of rotated unit-row coordinates U (m × n).

        U is overwritten (by |U|); `tmp` is an m × n bool scratch array.
        """
        np.greater(U, 0, out=planes[:, 0])
        if self.k == 1:
            return
        np.abs(U, out=U)
        for p, js in enumerate(self.xor_sets, start=1):
            plane = planes[:, p]
            np.greater(U, self.cuts[js[0] - 1], out=plane)
            for j in js[1:]:
                np.greater(U, self.cuts[j - 1], out=tmp)
                np.logical_xor(plane, tmp, out=plane)

    def decode(self, bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Values (m × n float32) from the unpacked code bits (m × total, uint8 0/1)."""
        m = len(bits)
        planes = bits[:, self.offset : self.offset + self.bits].reshape(m, self.k, self.n)
        code = planes[:, 0].copy()
        for p in range(1, self.k):
            code <<= 1
            code |= planes[:, p]
        return np.take(self.table, code, out=out)


# --- the code -----------------------------------------------------------------------------


class TurboQuant(Code):
    """TurboQuant: randomized Hadamard rotation, then a Lloyd–Max codebook per coordinate.

    `TurboQuant(bits)` is TurboQuant_mse with `bits` ∈ {1, 1.5, 2, 2.5, 3, 3.5, 4} a
    coordinate (`turbo<bits>`); `TurboQuant(bits, prod=True)` is TurboQuant_prod with
    b ∈ {1, 2, 3, 4} bits a coordinate in total, b − 1 of them MSE and one QJL sign,
    plus γ as float16 (`turbo<b>-prod`; b = 1 is QJL alone). See the module docstring
    for the algorithms.

    Directions only: encode normalises each row (a zero row stays zero, no NaN) and
    stores its direction; decode returns the estimate of the unit vector. Cosine
    tasks need no norm. A zero row has no direction: it is coded as the all-zero
    rotated vector (every coordinate at the level just below 0), so the MSE variant
    decodes it to a fixed vector, and the prod variant to an unbiased estimate of 0
    (exactly 0 for b = 1, where γ = 0).

    `ip_estimator` is True for the prod variant: decode(encode(x)) is an unbiased
    estimator of x for inner products with a float query, so a search must not
    re-normalise the decoded documents (their norms are noisy on purpose). The MSE
    variant's decoded vectors are shrunk (norm² ≈ 1 − D_mse) and biased for inner
    products; re-normalising them is harmless.

    Nothing is fitted on data (`learns` False): `fit` records d and draws the
    rotation (and S) from `seed` (`random` True; the same seed gives byte-identical
    codes). encode/decode on another d than the fitted one raise; before any fit
    they set themselves up for the d they see. Row chunks run on up to THREADS
    threads (the bytes do not depend on the split).

    Layout of a code: one MSB-first bit stream of fixed-width fields, the rotated
    coordinates in order (the b + 1 bit group first for a fractional width; for
    prod the b − 1 bit MSE fields, then the d QJL sign bits), padded to a byte,
    then γ (prod, float16, little-endian).
    """

    learns, random = False, True
    THREADS = min(4, os.cpu_count() or 1)  # row chunks encoded in parallel, as `hadamard`
    BLOCK_FLOATS = 1 << 16  # floats per row block (prod encode); a thread gets ≥ 4 blocks

    def __init__(self, bits: float, prod: bool = False, seed: int = DEFAULT_SEED):
        allowed = PROD_BITS if prod else MSE_BITS
        if bits not in allowed:
            kind = "turbo<b>-prod" if prod else "turbo<b>"
            raise ValueError(f"{kind} takes bits in {allowed}, got {bits}")
        self.bits = int(bits) if bits == int(bits) else float(bits)
        self.prod = prod
        self.seed = seed
        self.name = f"turbo{self.bits:g}" + ("-prod" if prod else "")
        self.mse_bits = self.bits - 1 if prod else self.bits
        self.d: int | None = None

    @property
    def summary(self) -> str:
        """One line for `embedbench list techniques`."""
        if self.prod:
            return (
                f"TurboQuant_prod (§3.2): {self.mse_bits:g}-bit TurboQuant_mse, then the 1-bit "
                "QJL sketch of the residual and its norm: unbiased inner products."
            )
        return (
            f"TurboQuant_mse (§3.1): randomized Hadamard rotation, then a {self.bits:g}-bit "
            "Lloyd–Max codebook per coordinate for the rotated unit vector's law."
        )

    @property
    def ip_estimator(self) -> bool:
        """decode(encode(x)) is unbiased for ⟨y, x⟩: do not re-normalise decoded vectors."""
        return self.prod

    # --- set-up ---

    def fit(self, X: np.ndarray) -> TurboQuant:
        """Record d and draw the rotation (and S) from `seed`: nothing is learnt from X."""
        d = np.asarray(X).shape[1]
        if d != self.d:
            self.d = None  # a new d: set up again
        self._setup(d)
        return self

    def _setup(self, d: int) -> None:
        if self.d == d:
            return
        if self.d is not None:
            raise ValueError(f"{self.name} was fitted on {self.d} dimensions, got {d}")
        rot = RandomizedHadamard((self.seed, _PI_STREAM))  # type: ignore[arg-type]
        rot.THREADS = 1  # this code runs its own row chunks in parallel
        rot.fit(np.zeros((1, d), dtype=np.float32))
        self.groups, col, bit = [], 0, 0
        for n, k in _groups(d, self.mse_bits) if self.mse_bits else []:
            self.groups.append(_Group(lloyd_max(d, k), slice(col, col + n), bit))
            col, bit = col + n, bit + n * k
        self.code_bits = bit + (d if self.prod else 0)  # the QJL plane last
        if self.prod:
            rng = np.random.default_rng((self.seed, _S_STREAM))
            self.S = rng.standard_normal((d, d), dtype=np.float32)
        self.rotation, self.d = rot, d
        self._tables = _kernel_tables(self.groups)

    # --- sizes ---

    def bytes_per_vector(self, d: int) -> int:
        """Exactly ⌈bits a vector / 8⌉, plus γ's 2 bytes for prod."""
        groups = _groups(d, self.mse_bits) if self.mse_bits else []
        bits = sum(n * k for n, k in groups) + (d if self.prod else 0)
        return math.ceil(bits / 8) + (GAMMA_BYTES if self.prod else 0)

    def params_bytes(self) -> int:
        """What a deployment stores besides the codes: codebooks, rotation, S.

        The centroids as float32 (boundaries are their midpoints), the rotation's
        random signs as `RandomizedHadamard` counts them (float32 each), and for
        prod the d × d Gaussian S as float32: stored, not regenerated from the seed,
        so a decoder does not depend on numpy's generator.
        """
        if self.d is None:
            raise RuntimeError(f"code {self.name} used before fit")
        size = sum(4 * len(g.book.centroids) for g in self.groups)
        size += self.rotation.params_bytes()
        return size + (self.S.nbytes if self.prod else 0)

    # --- encode ---

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        n, d = X.shape
        self._setup(d)
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        if not self.prod:
            from embedbench.quantize.turbo_kernels import encode_rows  # numba: imported on use

            signs, offsets = self.rotation._kernel_args
            groups, cuts, _ = self._tables
            self._parallel(lambda x, o: encode_rows(x, signs, offsets, groups, cuts, o), X, out)
            return out
        # prod: MSE planes and residuals by row blocks, then S for BLOCK rows at a time
        # (one large BLAS product, not one per small block)
        mse_bits = self.code_bits - d
        planes = np.empty((min(n, BLOCK), self.code_bits), dtype=bool)
        R = np.empty((min(n, BLOCK), d), dtype=np.float32)
        for b in row_blocks(n):
            m = b.stop - b.start
            self._parallel(self._prod_rows, X[b], planes[:m], R[:m])
            gamma = np.sqrt(np.vecdot(R[:m], R[:m]))
            np.greater(R[:m] @ self.S.T, 0, out=planes[:m, mse_bits:])
            out[b, :-GAMMA_BYTES] = np.packbits(planes[:m], axis=1)
            out[b, -GAMMA_BYTES:] = gamma.astype("<f2").view(np.uint8).reshape(m, GAMMA_BYTES)
        return out

    def _parallel(self, fn, *arrays: np.ndarray) -> None:
        """fn(*arrays) on row chunks, up to THREADS threads of at least 4 row blocks."""
        parallel_rows(fn, arrays, self.THREADS, 4 * self._block_rows())

    def _block_rows(self) -> int:
        return max(1, self.BLOCK_FLOATS // self.d)

    def _prod_rows(self, X: np.ndarray, planes: np.ndarray, residual: np.ndarray) -> None:
        """Rotate, normalise and quantize rows of X (prod) by blocks of BLOCK_FLOATS.

        The MSE bit planes go to `planes` (bool; the QJL plane is left to the caller),
        the residual directions u − x̃_mse(u), in rotated coordinates, to `residual`.
        """
        rows, d = X.shape
        step = self._block_rows()
        m0 = min(rows, step)
        Z = np.empty((m0, d), dtype=np.float32)
        U = np.empty((m0, d), dtype=np.float32)
        tmp = np.empty((m0, d), dtype=bool)
        for b in row_blocks(rows, step):
            m = b.stop - b.start
            Zb, Ub, P, Rb = Z[:m], U[:m], planes[b], residual[b]
            self.rotation.apply(X[b], out=Zb)
            norm = np.sqrt(np.vecdot(Zb, Zb))
            inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
            np.multiply(Zb, inv[:, None], out=Ub)  # the direction: a zero row stays zero
            np.copyto(Rb, Ub)
            for g in self.groups:
                g_planes = P[:, g.offset : g.offset + g.bits].reshape(m, g.k, g.n)
                g.encode(Ub[:, g.cols], g_planes, tmp[:m, g.cols])
            bits = P.view(np.uint8)
            for g in self.groups:
                Rb[:, g.cols] -= g.decode(bits)

    # --- decode ---

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        from embedbench.quantize.turbo_kernels import decode_rows  # numba: imported on use

        self._setup(d)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        n = len(codes)
        out = np.empty((n, d), dtype=np.float32)
        signs, offsets = self.rotation._kernel_args
        groups, _, levels = self._tables

        def levels_rotated_back(codes, out, qjl):  # plus the QJL term for prod
            decode_rows(codes, signs, offsets, groups, levels, qjl, out)

        if not self.prod:
            self._parallel(levels_rotated_back, codes, out, np.empty((n, 0), dtype=np.float32))
            return out
        # prod: the QJL term √(π/2)/d · γ · S^T sign, for BLOCK rows at a time (one BLAS
        # product), added to the levels before the rotation back
        mse_bits = self.code_bits - d
        for b in row_blocks(n):
            bits = np.unpackbits(codes[b, :-GAMMA_BYTES], axis=1, count=self.code_bits)
            signs_ = bits[:, mse_bits:].astype(np.float32) * 2 - 1
            gamma = codes[b, -GAMMA_BYTES:].copy().view("<f2")[:, 0].astype(np.float32)
            qjl = signs_ @ self.S
            qjl *= (math.sqrt(math.pi / 2) / d * gamma)[:, None]
            self._parallel(levels_rotated_back, codes[b], out[b], qjl)
        return out


def _kernel_tables(groups: list[_Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The groups as the kernels take them: (first coordinate, coordinates, k, first bit)
    rows (int64), each group's positive boundaries and its positive level of each Gray
    code (float32 rows, padded)."""
    table = np.array([[g.cols.start, g.n, g.k, g.offset] for g in groups], dtype=np.int64)
    cuts = np.full((len(groups), max([len(g.cuts) for g in groups] + [1])), np.inf, np.float32)
    levels = np.zeros((len(groups), max([len(g.table) // 2 for g in groups] + [1])), np.float32)
    for i, g in enumerate(groups):
        cuts[i, : len(g.cuts)] = g.cuts
        levels[i, : len(g.table) // 2] = g.table[len(g.table) // 2 :]
    return table.reshape(-1, 4), cuts, levels
