"""Codes and transforms: a technique is `transform+...+code`, fitted on calibration only.

A *code* turns float vectors into packed bytes (`encode`, the storage format that
defines the size) and back into the floats an evaluator sees (`decode`): binary as
±1, ternary as {-1, 0, +1}, int8 dequantized. A *transform* (rotation, ...) is an
orthogonal map applied before the code. Everything fitted (ranges, thresholds,
rotations) is fitted by `Technique.fit` on calibration vectors, never on the
vectors being evaluated. Numpy in, numpy out; encoding works in row blocks so
temporaries stay in cache.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

BLOCK = 4096  # rows per block: big enough for BLAS, small enough for L2


class Code(ABC):
    """A fixed-width code: `bits` per dimension, packed row by row."""

    name: str
    bits: int

    def fit(self, X: np.ndarray) -> Code:
        """Fit parameters on calibration vectors (most codes have none)."""
        return self

    @abstractmethod
    def encode(self, X: np.ndarray) -> np.ndarray:
        """Pack float32 rows (n × d) into uint8 rows (n × bytes_per_vector)."""

    @abstractmethod
    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        """Unpack to the float32 vectors (n × d) the codes stand for."""

    def bytes_per_vector(self, d: int) -> int:
        return math.ceil(d * self.bits / 8)

    def params_bytes(self) -> int:
        """Fixed cost of fitted parameters, reported apart from the per-vector size."""
        return 0


def _blocks(n: int):
    for start in range(0, n, BLOCK):
        yield slice(start, min(start + BLOCK, n))


class Float32(Code):
    """The float baseline: the vectors as returned, 4 bytes a dimension."""

    name, bits = "float32", 32

    def encode(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(X, dtype=np.float32).view(np.uint8)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        return np.ascontiguousarray(codes).view(np.float32).reshape(len(codes), d)


class Int8(Code):
    """Per-dimension min/max from calibration, 256 levels; out-of-range values clip."""

    name, bits = "int8", 8

    def fit(self, X: np.ndarray) -> Int8:
        lo, hi = X.min(axis=0), X.max(axis=0)
        step = (hi - lo) / 255.0
        self.lo = lo.astype(np.float32)
        self.step = np.where(step > 0, step, 1.0).astype(np.float32)
        # q = round((x - lo) / step) - 128 == round(x * inv + shift), one fused pass
        self.inv = (1.0 / self.step).astype(np.float32)
        self.shift = (-self.lo * self.inv - 128.0).astype(np.float32)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.int8)
        for b in _blocks(len(X)):
            tmp = np.multiply(X[b], self.inv, dtype=np.float32)
            tmp += self.shift
            np.rint(tmp, out=tmp)
            np.clip(tmp, -128, 127, out=tmp)
            out[b] = tmp
        return out.view(np.uint8)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        q = codes.view(np.int8).astype(np.float32)
        return (q + 128.0) * self.step + self.lo

    def params_bytes(self) -> int:
        return 2 * 4 * len(self.lo)


class Ternary(Code):
    """Three levels per dimension, thresholds at calibration quantiles 1/3 and 2/3.

    Stored as two packed bit planes (x > t1, x > t2): 2 bits a dimension; the
    decoded value is their sum minus one, in {-1, 0, +1}.
    """

    name, bits = "ternary", 2

    def fit(self, X: np.ndarray) -> Ternary:
        t = np.quantile(X, [1 / 3, 2 / 3], axis=0).astype(np.float32)
        self.t1, self.t2 = t[0], t[1]
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        planes = np.empty((min(n, BLOCK), 2 * d), dtype=bool)
        for b in _blocks(n):
            m = b.stop - b.start
            np.greater(X[b], self.t1, out=planes[:m, :d])
            np.greater(X[b], self.t2, out=planes[:m, d:])
            out[b] = np.packbits(planes[:m], axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=2 * d).astype(np.float32)
        return bits[:, :d] + bits[:, d:] - 1.0

    def params_bytes(self) -> int:
        return 2 * 4 * len(self.t1)


class Binary(Code):
    """Sign bit (x > 0), decoded to ±1: cosine on ±1 is affine in Hamming distance."""

    name, bits = "binary", 1

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in _blocks(n):
            out[b] = np.packbits(X[b] > 0, axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=d).astype(np.float32)
        return bits * 2.0 - 1.0


class Transform(ABC):
    """A map applied to float vectors before the code, fitted on calibration."""

    name: str

    def fit(self, X: np.ndarray) -> Transform:
        return self

    @abstractmethod
    def apply(self, X: np.ndarray) -> np.ndarray: ...

    def out_dim(self, d: int) -> int:
        return d

    def params_bytes(self) -> int:
        return 0


class SVDRotation(Transform):
    """The seed's "rotation", done as intended: X @ V, V the right singular vectors.

    V (d × d) comes from the centred calibration matrix (eigenvectors of its
    scatter matrix, largest first, signs fixed so each column's largest entry is
    positive). Only the rotation is applied, not the centring: cosines are kept.
    """

    name = "svd"

    def fit(self, X: np.ndarray) -> SVDRotation:
        Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
        evals, V = np.linalg.eigh(Xc.T @ Xc)
        V = V[:, np.argsort(evals)[::-1]]
        signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])])
        self.R = (V * signs).astype(np.float32)
        return self

    def apply(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32) @ self.R

    def params_bytes(self) -> int:
        return self.R.nbytes


CODES: dict[str, type[Code]] = {c.name: c for c in (Float32, Int8, Ternary, Binary)}
TRANSFORMS: dict[str, type[Transform]] = {t.name: t for t in (SVDRotation,)}

PRESETS: dict[str, str] = {
    "classic": "float32",
    "scalar": "int8",
    "ternary": "ternary",
    "binary": "binary",
    "rotated-scalar": "svd+int8",
    "rotated-ternary": "svd+ternary",
    "rotated-binary": "svd+binary",
}


@dataclass
class Technique:
    """Transforms then a code; `spec` is its canonical name, e.g. `svd+binary`."""

    name: str
    spec: str
    transforms: list[Transform] = field(default_factory=list)
    code: Code = field(default_factory=Float32)
    fitted: bool = False

    def fit(self, X_cal: np.ndarray) -> Technique:
        """Fit every part in order on calibration vectors only."""
        Z = np.asarray(X_cal, dtype=np.float32)
        for t in self.transforms:
            Z = t.fit(Z).apply(Z)
        self.code.fit(Z)
        self.fitted = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float32)
        for t in self.transforms:
            Z = t.apply(Z)
        return Z

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The stored codes (uint8 rows)."""
        if not self.fitted:
            raise RuntimeError(f"technique {self.name} used before fit")
        return self.code.encode(self.transform(X))

    def decode(self, codes: np.ndarray, d_in: int) -> np.ndarray:
        return self.code.decode(codes, self.out_dim(d_in))

    def roundtrip(self, X: np.ndarray) -> np.ndarray:
        """What an evaluator sees: decode(encode(X)), always through the packed bytes."""
        return self.decode(self.encode(X), X.shape[1])

    def out_dim(self, d_in: int) -> int:
        d = d_in
        for t in self.transforms:
            d = t.out_dim(d)
        return d

    def bytes_per_vector(self, d_in: int) -> int:
        return self.code.bytes_per_vector(self.out_dim(d_in))

    def bits_per_dim(self, d_in: int) -> float:
        """Stored bits per dimension of the original float vector."""
        return 8 * self.bytes_per_vector(d_in) / d_in

    def size_multiplier(self, d_in: int) -> float:
        return 4 * d_in / self.bytes_per_vector(d_in)

    def params_bytes(self) -> int:
        return sum(t.params_bytes() for t in self.transforms) + self.code.params_bytes()


def technique_names() -> list[str]:
    """Preset names and every code name (transform compositions come on top)."""
    return sorted(set(PRESETS) | set(CODES))


def parse_technique(name: str) -> Technique:
    """Build a technique from a preset name or a `transform+...+code` spec.

    Raises `KeyError` with the offending part for an unknown name.
    """
    spec = PRESETS.get(name, name)
    *transforms, code = spec.split("+")
    if code not in CODES:
        raise KeyError(code)
    for t in transforms:
        if t not in TRANSFORMS:
            raise KeyError(t)
    return Technique(
        name=name,
        spec=spec,
        transforms=[TRANSFORMS[t]() for t in transforms],
        code=CODES[code](),
    )
