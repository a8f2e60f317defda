"""`Technique`: transforms then a code, fitted in order on calibration vectors only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embedbench.quantize.codes import Code, Float32
from embedbench.quantize.transforms import Transform


@dataclass
class Technique:
    """Transforms then a code; `spec` is its canonical name, e.g. `svd+binary`.

    `seed` is the replicate seed its random parts were built with (they draw from
    `DEFAULT_SEED + seed`); the spec does not include it. `search_learns` is set by
    whoever adds search options that fit something on calibration themselves
    (`registry.build_technique` for `/rescore<k>-int8`: the int8 re-ranking copies).
    """

    name: str
    spec: str
    transforms: list[Transform] = field(default_factory=list)
    code: Code = field(default_factory=Float32)
    fitted: bool = False
    seed: int = 0
    search_learns: bool = False

    @property
    def learns(self) -> bool:
        """Some part is fitted on calibration vectors (a transform, the code, a search)."""
        parts = [*self.transforms, self.code]
        return self.search_learns or any(p.learns for p in parts)

    @property
    def random(self) -> bool:
        """Some part draws random numbers (from `DEFAULT_SEED + seed`)."""
        return any(p.random for p in [*self.transforms, self.code])

    @property
    def depends_on_seed(self) -> bool:
        """Another calibration sample or replicate seed can change the technique, so it
        is run over several seeds (float32, fp16, binary, truncation, native codes:
        no, one run is the answer)."""
        return self.learns or self.random

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

    def bits_per_vector(self, d_in: int) -> int:
        """Stored bits per vector (8 × bytes per vector, so including any padding bits)."""
        return 8 * self.bytes_per_vector(d_in)

    def bits_per_dim(self, d_in: int) -> float:
        """Stored bits per dimension of the original float vector."""
        return 8 * self.bytes_per_vector(d_in) / d_in

    def size_multiplier(self, d_in: int) -> float:
        return 4 * d_in / self.bytes_per_vector(d_in)

    def params_bytes(self) -> int:
        return sum(t.params_bytes() for t in self.transforms) + self.code.params_bytes()
