"""MTEB tasks: mteb's own task objects and evaluators, one class per task kind.

- `kinds`: the registry (`KINDS`, by mteb task type) of the kinds evaluated here;
  each kind module (`sts`, `classification`, `pair`, `clustering`, `retrieval`,
  `bitext`) owns its texts, evaluator settings, predictions and resampler;
- `load`: a task with its data, from a local folder or the hub; `user`: a team's
  own files as a real mteb task; `calibration`: where fitted parameters come from;
- `base`: the `Kind` protocol and `LoadedTask`; `files`: reading local files;
  `mteb_compat`: every use of mteb's private internals.
"""

from embedbench.tasks.base import Kind, LoadedTask, Unit, unit_key
from embedbench.tasks.calibration import calibration_texts, normalize_text, overlap, sample_texts
from embedbench.tasks.files import read_jsonl, read_numbered_jsonl, sha256_file
from embedbench.tasks.kinds import KINDS, kind_of, resampler
from embedbench.tasks.load import DATA_ENV, TASK_LISTING, known_tasks, load_task, resolve_data_dir

__all__ = [
    "DATA_ENV",
    "KINDS",
    "TASK_LISTING",
    "Kind",
    "LoadedTask",
    "Unit",
    "calibration_texts",
    "kind_of",
    "known_tasks",
    "load_task",
    "normalize_text",
    "overlap",
    "read_jsonl",
    "read_numbered_jsonl",
    "resampler",
    "resolve_data_dir",
    "sample_texts",
    "sha256_file",
    "unit_key",
]
