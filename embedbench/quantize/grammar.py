"""Technique names: presets, `transform+...+code` specs, and their float controls.

Names: `transform+...+code`, each part a key of TRANSFORMS or a code: a key of CODES,
or a member of a code family (`CODE_FAMILIES`): `faiss:<index_factory string>` (any
faiss standalone codec, e.g. `faiss:OPQ24,PQ24`) and TurboQuant
`turbo<b>[-prod]` (b in 1, 1.5, 2, 2.5, 3, 3.5, 4; `-prod` for b in 1..4). A transform key
ending in `<k>` takes a positive integer parameter written in its place:
`trunc128+binary` keeps the first 128 dimensions, then codes them as binary.
`PRESETS` name the seed's seven techniques. `parse_technique` builds a `Technique`
from a name and a replicate seed; `control_spec` names the float control of a chain
that changes the float geometry.
"""

from __future__ import annotations

import re

import numpy as np

from embedbench.quantize.codes import CODES, Code, Float32
from embedbench.quantize.hadamard import RandomizedHadamard, RandomizedHadamardPadded
from embedbench.quantize.rotations import (
    ITQ,
    HaarRotation,
    PCAHaarRotation,
    PCAReduce,
    SVDRotation,
)
from embedbench.quantize.technique import Technique
from embedbench.quantize.transforms import DEFAULT_SEED, PARAM, Center, Transform, Truncate

_PARAM_NAME = re.compile(r"(?P<base>[a-z][a-z-]*?)(?P<k>[1-9][0-9]*)")
FAISS_PREFIX = "faiss:"
_TURBO = re.compile(r"turbo(?P<b>1|1\.5|2|2\.5|3|3\.5|4)(?P<prod>-prod)?")
_TURBO_PROD_BITS = ("1", "2", "3", "4")
# what a code part may be besides a CODES key (for "allowed:" in errors and listings)
CODE_FAMILIES = {
    "faiss:<index_factory>": "any faiss standalone codec, e.g. faiss:PQ24, faiss:OPQ24,PQ24",
    "turbo<b>": "TurboQuant (MSE), b in 1, 1.5, 2, 2.5, 3, 3.5, 4",
    "turbo<b>-prod": "TurboQuant (inner product: b-1 bits MSE + 1-bit QJL), b in 1..4",
    "<engine>:<setting>": "a vector database's setting, e.g. qdrant:binary (list techniques)",
}

# Keys are what a spec is written with; `trunc<k>` stands for trunc1, trunc2, ...
TRANSFORMS: dict[str, type[Transform]] = {
    t.name: t
    for t in (
        SVDRotation,
        Center,
        HaarRotation,
        RandomizedHadamard,
        RandomizedHadamardPadded,
        PCAHaarRotation,
        ITQ,
        Truncate,
        PCAReduce,
    )
}

PRESETS: dict[str, str] = {
    "classic": "float32",
    "scalar": "int8",
    "ternary": "ternary",
    "binary": "binary",
    "rotated-scalar": "svd+int8",
    "rotated-ternary": "svd+ternary",
    "rotated-binary": "svd+binary",
}


def technique_names() -> list[str]:
    """Preset names and every code name (transform compositions come on top)."""
    return sorted(set(PRESETS) | set(CODES))


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def build_transform(part: str, seed: int = 0) -> Transform:
    """One transform from its name: a TRANSFORMS key, or `base<k>` written `base128`.

    A random transform draws from `DEFAULT_SEED + seed`. Raises `KeyError(part)` for
    anything else (including `trunc`, `trunc0`, `trunc<k>`).
    """
    _check_seed(seed)
    cls = TRANSFORMS.get(part)
    if cls is not None and not part.endswith(PARAM):
        return cls(seed=DEFAULT_SEED + seed) if cls.random else cls()
    m = _PARAM_NAME.fullmatch(part)
    if m and m["base"] + PARAM in TRANSFORMS:
        return TRANSFORMS[m["base"] + PARAM](int(m["k"]))
    raise KeyError(part)


# members of the code families that `embedbench list techniques` shows
FAMILY_EXAMPLES = (
    *(f"turbo{b}" for b in ("1", "1.5", "2", "2.5", "3", "3.5", "4")),
    *(f"turbo{b}-prod" for b in _TURBO_PROD_BITS),
    *(
        FAISS_PREFIX + f
        for f in (
            "PQ24",
            "OPQ24,PQ24",
            "PQ48x4",
            "RQ3x8",
            "LSQ4x8",
            "SQ4",
            "SQ8",
            "SQfp16",
            "RaBitQ",
        )
    ),
)


def is_code_name(part: str) -> bool:
    """A CODES key, an engine preset, or a member of a code family (a faiss factory
    string is checked later)."""
    from embedbench.engines import is_preset

    if part in CODES or is_preset(part):
        return True
    if part.startswith(FAISS_PREFIX) and len(part) > len(FAISS_PREFIX):
        return True
    m = _TURBO.fullmatch(part)
    return bool(m) and (not m["prod"] or m["b"] in _TURBO_PROD_BITS)


def build_code(part: str, seed: int = 0) -> Code:
    """A code by name; a random one draws from `DEFAULT_SEED + seed`. Raises
    `KeyError(part)` for a name that is no code, `ValueError` with faiss's reason for a
    factory string faiss rejects."""
    _check_seed(seed)
    if part in CODES:
        return CODES[part]()
    if not is_code_name(part):
        raise KeyError(part)
    from embedbench.engines import is_preset, preset

    if is_preset(part):
        return preset(part, DEFAULT_SEED + seed)
    if part.startswith(FAISS_PREFIX):
        from embedbench.quantize.faiss_codec import FaissCode

        code = FaissCode(part[len(FAISS_PREFIX) :], seed=DEFAULT_SEED + seed)
        code.learns  # noqa: B018  (faiss builds it for some dimension, else ValueError)
        return code
    from embedbench.quantize.turbo import TurboQuant

    m = _TURBO.fullmatch(part)
    assert m is not None
    return TurboQuant(float(m["b"]), prod=bool(m["prod"]), seed=DEFAULT_SEED + seed)


def _split_spec(name: str) -> tuple[str, list[str], str]:
    """(spec, transform parts, code) of a preset or `transform+...+code` name.

    Raises `KeyError(code)` for an unknown code; transforms are not checked here.
    """
    spec = PRESETS.get(name, name)
    *parts, code = spec.split("+")
    if not is_code_name(code):
        raise KeyError(code)
    return spec, parts, code


def parse_technique(name: str, seed: int = 0) -> Technique:
    """Build a technique from a preset name or a `transform+...+code` spec.

    `seed` is the replicate seed: random transforms (haar, pca-haar, hadamard,
    hadamard-pad, ITQ's Haar start) draw from `DEFAULT_SEED + seed`, so seed 0 is
    the technique every name meant before seeds existed, and the same name and seed
    always give byte-identical codes on the same calibration. Parts that are not
    random ignore it (another seed changes them only through another calibration
    sample, which the caller draws). Raises `KeyError` with the offending part for
    an unknown name: the code is checked first, then the transforms left to right;
    `ValueError` for a seed that is not a non-negative integer.
    """
    _check_seed(seed)
    spec, parts, code = _split_spec(name)
    transforms = [build_transform(t, seed) for t in parts]
    return Technique(
        name=name, spec=spec, transforms=transforms, code=build_code(code, seed), seed=int(seed)
    )


def control_spec(spec_or_name: str) -> str | None:
    """The float control of a technique: its transform chain with the float32 code.

    A chain with a transform that does not keep cosines (`keeps_cosines` False:
    centring, ITQ (it centres), svd and pca-haar (they project out the directions
    without calibration variance), truncation) changes the float geometry itself,
    which can help or hurt before any code; its retention is read against this
    control, e.g. `itq+binary` -> `itq+float32`, `trunc192+int8` ->
    `trunc192+float32`, the preset `rotated-binary` -> `svd+float32`,
    `center+svd+ternary` -> `center+svd+float32`. The control keeps every
    transform in order, isometries included (`center+haar+binary` ->
    `center+haar+float32`), so it must be built with the same seed and fitted on the
    same calibration as the technique.

    None when no control is needed: a code alone, a chain of isometries only (haar,
    hadamard, hadamard-pad: cosines kept, the float baseline is the control), a
    chain already ending in float32, and provider-native codes (no float chain).
    Search options after a slash are dropped: the control of `itq+binary/rescore4`
    (or `/asym`) is `itq+float32`, a plain exhaustive search with the transformed
    float vectors, i.e. the geometry the code approximates. `/rescore<k>` re-ranks
    its candidates with the untransformed float vectors (or int8 copies of them),
    so for a rescored technique the control measures the transformed geometry that
    picks the candidates, not the re-ranking. Raises `KeyError` with the offending
    part for an unknown name, as `parse_technique` does.
    """
    from embedbench.native import native_kind

    base = spec_or_name.split("/")[0]
    if native_kind(base) is not None:
        return None
    _, parts, code = _split_spec(base)
    transforms = [build_transform(t) for t in parts]
    if code == Float32.name or all(t.keeps_cosines for t in transforms):
        return None
    return "+".join([*parts, Float32.name])
