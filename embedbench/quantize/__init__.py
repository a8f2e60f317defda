"""Codes and transforms: a technique is `transform+...+code`, fitted on calibration only.

A *code* turns float vectors into packed bytes (`encode`, the storage format that
defines the size) and back into the floats an evaluator sees (`decode`): binary as
±1, ternary as {-1, 0, +1}, int8/int4 dequantized. A *transform* (centring,
rotation, truncation) is a map applied before the code; each class says whether it
keeps every cosine (`keeps_cosines`; `control_spec` names the float control of a
chain that does not). Everything fitted (ranges, thresholds, means, rotations, ITQ)
is fitted by `Technique.fit` on calibration vectors, never on the vectors being
evaluated. Random transforms draw from `DEFAULT_SEED + seed`, `seed` the replicate
seed given to `parse_technique` (0 unless given), so a name and a seed always mean
the same map. Every part says whether it `learns` (fits something on calibration)
and whether it is `random`; `Technique.depends_on_seed` is True when either holds,
i.e. when another calibration sample or seed can change the technique. Numpy in,
numpy out; encoding works in row blocks so temporaries stay in cache.

Modules, one concept each (every name is re-exported here):

- `codes`: the `Code` base and the codes (float32, fp16, int8, int4, 2bit, ternary,
  ternary-sym, binary, binary-centered), `CODES`;
- `transforms`: the `Transform` base, `center`, `trunc<k>`;
- `rotations`: the PCA basis, the matrix rotations `svd`, `haar`, `pca-haar`, `itq`,
  and PCA dimension reduction `pca<k>`;
- `hadamard`: the fast randomized Hadamard rotations `hadamard`, `hadamard-pad`;
- `turbo`: TurboQuant (`TurboQuant`: `turbo<b>`, `turbo<b>-prod`), a random rotation then
  Lloyd–Max codebooks per coordinate (`lloyd_max`), data-oblivious (a code family of the
  grammar, not a `CODES` key);
- `technique`: `Technique`, transforms then a code, fitted and sized;
- `grammar`: names (`PRESETS`, `TRANSFORMS`, `transform+...+code`), `parse_technique`,
  `control_spec`;
- `faiss_codec`: any faiss standalone codec as a code, `FaissCode` (`faiss:<factory>`,
  e.g. `faiss:PQ24`, `faiss:RaBitQ`), `check_factory`, `training_shortfall`, and
  `faiss_search_scores` (the index's own scores, e.g. RaBitQ's estimator); building,
  inspecting and checking the index in `faiss_index`. faiss is imported when first used;
- `distortion`: reconstruction error against Shannon's bound.
"""

from embedbench.quantize.codes import (
    BLOCK,
    CODES,
    Binary,
    BinaryCentered,
    Code,
    Float16,
    Float32,
    Int4,
    Int8,
    Ternary,
    TernarySym,
    TwoBit,
)
from embedbench.quantize.faiss_codec import (
    FaissCode,
    check_factory,
    faiss_search_scores,
    training_shortfall,
)
from embedbench.quantize.grammar import (
    PRESETS,
    TRANSFORMS,
    build_transform,
    control_spec,
    parse_technique,
    technique_names,
)
from embedbench.quantize.hadamard import RandomizedHadamard, RandomizedHadamardPadded
from embedbench.quantize.rotations import (
    ITQ,
    RANK_RTOL,
    HaarRotation,
    PCAHaarRotation,
    PCAReduce,
    SVDRotation,
    _pca_basis,
)
from embedbench.quantize.technique import Technique
from embedbench.quantize.transforms import (
    DEFAULT_SEED,
    PARAM,
    Center,
    MatrixRotation,
    Transform,
    Truncate,
)
from embedbench.quantize.turbo import TurboQuant

__all__ = [
    "BLOCK",
    "CODES",
    "DEFAULT_SEED",
    "ITQ",
    "PARAM",
    "PRESETS",
    "RANK_RTOL",
    "TRANSFORMS",
    "Binary",
    "BinaryCentered",
    "Center",
    "Code",
    "FaissCode",
    "Float16",
    "Float32",
    "HaarRotation",
    "Int4",
    "Int8",
    "MatrixRotation",
    "PCAHaarRotation",
    "PCAReduce",
    "RandomizedHadamard",
    "RandomizedHadamardPadded",
    "SVDRotation",
    "Technique",
    "Ternary",
    "TernarySym",
    "Transform",
    "Truncate",
    "TurboQuant",
    "TwoBit",
    "_pca_basis",
    "build_transform",
    "check_factory",
    "control_spec",
    "faiss_search_scores",
    "parse_technique",
    "technique_names",
    "training_shortfall",
]
