"""Provider-native quantized outputs (Cohere int8/uint8/binary/ubinary, Titan v2 binary).

They are requested in the same calls as the float vectors and cached beside them,
so a table compares a provider's own quantization with client-side codes of the
very same floats. What mteb sees is what each output means:

- `int8`: the values; `uint8`: the values minus 128 (Cohere's uint8 is int8 + 128),
  so cosine compares centred levels as int8 does;
- `binary` / `ubinary`: packed sign bits decoded to ±1. Cohere's `binary` is the
  packed byte minus 128; its `ubinary` and Titan v2's `binary` (one 0/1 per
  dimension, packed by the adapter) are the packed bytes themselves.
"""

from __future__ import annotations

import numpy as np

from embedbench.quantize import Code, Technique

KINDS = ("int8", "uint8", "binary", "ubinary")
PREFIX = "native-"


def native_kind(name: str) -> str | None:
    """`native-int8` -> `int8`; None for a technique that is not a native output."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


class NativeCode(Code):
    """A provider's own code: `encode` stores its values, `decode` gives their meaning.

    Nothing is fitted or drawn here (the provider quantized), so one run is the answer.
    """

    learns, random = False, False

    def __init__(self, kind: str):
        self.kind = kind
        self.name = PREFIX + kind
        self.bits = 8 if kind in ("int8", "uint8") else 1
        self.signed_bits = kind == "binary"  # Cohere's convention; Titan's is unsigned

    @property
    def summary(self) -> str:
        """One line for `embedbench list techniques`."""
        who = "Cohere; Titan v2" if self.kind == "binary" else "Cohere"
        return f"The provider's own {self.kind} output ({who}), requested with the floats."

    def bind(self, model: str) -> NativeCode:
        """Titan v2's `binary` output is packed unsigned (as Cohere's `ubinary`)."""
        if self.kind == "binary" and model.startswith(("amazon.titan", "us.amazon.titan")):
            self.signed_bits = False
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        values = np.rint(np.asarray(X, dtype=np.float64)).astype(np.int16)
        if self.kind == "int8":
            return values.astype(np.int8).view(np.uint8)
        if self.signed_bits:
            values = values + 128
        return values.astype(np.uint8)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        if self.kind == "int8":
            return codes.view(np.int8).astype(np.float32)
        if self.kind == "uint8":
            return codes.astype(np.float32) - 128.0
        return np.unpackbits(codes, axis=1).astype(np.float32) * 2.0 - 1.0


def native_technique(name: str) -> Technique:
    kind = native_kind(name)
    if kind not in KINDS:
        raise KeyError(name)
    return Technique(name=name, spec=name, transforms=[], code=NativeCode(kind))
