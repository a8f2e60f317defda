"""Warm-cache sweep overhead: wall time of `embedbench run` over mteb's evaluation time.

Runs the config once to warm the cache (embedding whatever is missing), then again
and measures the whole process (interpreter start, imports, fit, mteb, bootstrap,
outputs) against the seconds spent inside `mteb.evaluate` (the manifest's
`timings_seconds.evaluate`). Target ≤ 1.3×.
Usage: python bench/sweep_overhead.py [CONFIG]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    config = sys.argv[1] if len(sys.argv) > 1 else "configs/quickstart.yaml"
    exe = str(Path(sys.executable).parent / "embedbench")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [exe, "run", config, "--output", f"{tmp}/warm"], check=True, capture_output=True
        )
        t0 = time.perf_counter()
        subprocess.run(
            [exe, "run", config, "--output", f"{tmp}/timed"], check=True, capture_output=True
        )
        wall = time.perf_counter() - t0
        manifest = json.loads(Path(f"{tmp}/timed/manifest.json").read_text())
    t = manifest["timings_seconds"]
    print(f"config {config}: texts embedded in timed run {manifest['texts_embedded']}")
    print("phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    print(
        f"process wall {wall:.1f} s; inside mteb.evaluate {t['evaluate']:.1f} s; "
        f"overhead {wall / t['evaluate']:.3f}× (target ≤ 1.3)"
    )


if __name__ == "__main__":
    main()
