"""Weaviate's fast rotation (`entities/vectorindex/compression/fast_rotation.go`,
github.com/weaviate/weaviate at adcffc5) and the Go random numbers it is drawn from
(`math/rand/v2`: PCG-DXSM, Float64, Float32, Perm), ported bit for bit; used by the
`weaviate:rq8` / `weaviate:rq1` presets (`embedbench.engines.weaviate`)."""

from __future__ import annotations

import math

import numpy as np

DEFAULT_SEED = 0x535AB5105169B1DF  # compression.DefaultFastRotationSeed
ROTATION_STREAM = 0x385AB5285169B1AC  # NewFastRotation: rand.NewPCG(seed, this)
ROUNDING_STREAM = 0x4F8EBF70E130707F  # NewBinaryRotationalQuantizer's rounding PCG
ROUNDS = 3
MASK = (1 << 64) - 1


class GoRand:
    """Go's `rand.New(rand.NewPCG(seed1, seed2))` (math/rand/v2: PCG-DXSM)."""

    MUL = (2549297995355413924 << 64) | 4865540595714422341
    INC = (6364136223846793005 << 64) | 1442695040888963407

    def __init__(self, seed1: int, seed2: int):
        self.state = ((seed1 & MASK) << 64) | (seed2 & MASK)

    def uint64(self) -> int:
        self.state = (self.state * self.MUL + self.INC) & ((1 << 128) - 1)
        hi, lo = self.state >> 64, self.state & MASK
        hi ^= hi >> 32
        hi = (hi * 0xDA942042E4DD58B5) & MASK
        hi ^= hi >> 48
        return (hi * (lo | 1)) & MASK

    def uint64n(self, n: int) -> int:
        if n & (n - 1) == 0:
            return self.uint64() & (n - 1)
        prod = self.uint64() * n
        if prod & MASK < n:
            thresh = (-n & MASK) % n
            while prod & MASK < thresh:
                prod = self.uint64() * n
        return prod >> 64

    def float64(self) -> float:
        return (self.uint64() & ((1 << 53) - 1)) / (1 << 53)

    def float32(self) -> np.float32:
        return np.float32(((self.uint64() >> 32) & ((1 << 24) - 1)) / (1 << 24))

    def perm(self, n: int) -> list[int]:
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.uint64n(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h / math.sqrt(n)


class FastRotation:
    """Weaviate's FastRotation as an orthogonal matrix (out_dim × out_dim)."""

    def __init__(self, in_dim: int, seed: int, rounds: int = ROUNDS, swaps=None, signs=None):
        self.out_dim = 64 * max(1, -(-in_dim // 64))
        if swaps is None:  # NewFastRotation: per round randomSwaps then randomSigns
            rng, swaps, signs = GoRand(seed, ROTATION_STREAM), [], []
            for _ in range(rounds):
                p = rng.perm(self.out_dim)
                swaps.append(
                    sorted(tuple(sorted(p[2 * s : 2 * s + 2])) for s in range(len(p) // 2))
                )
                signs.append([-1.0 if rng.float64() < 0.5 else 1.0 for _ in range(self.out_dim)])
        self.swaps, self.signs = swaps, signs
        M = np.eye(self.out_dim)  # rows are the images of the basis vectors
        blocks, pos = [], 0
        while pos < self.out_dim:
            size = 256 if self.out_dim - pos >= 256 else 64
            blocks.append((pos, size))
            pos += size
        for sw, sg in zip(swaps, signs, strict=True):
            perm = np.arange(self.out_dim)
            for i, j in sw:  # out[i] = signs[i] * in[perm[i]]
                perm[i], perm[j] = j, i
            M = M[:, perm] * np.asarray(sg)
            for pos, size in blocks:
                M[:, pos : pos + size] = M[:, pos : pos + size] @ _hadamard(size)
        self.matrix = M  # rotate(x) = x_padded @ matrix

    def rotate(self, X: np.ndarray) -> np.ndarray:
        d = X.shape[1]
        return (np.asarray(X, np.float64) @ self.matrix[:d]).astype(np.float32)

    def unrotate(self, RX: np.ndarray, d: int) -> np.ndarray:
        return (np.asarray(RX, np.float64) @ self.matrix[:d].T).astype(np.float32)

    def params_bytes(self) -> int:  # swaps as uint16 pairs, signs as float32
        return sum(4 * len(s) + 4 * len(g) for s, g in zip(self.swaps, self.signs, strict=True))
