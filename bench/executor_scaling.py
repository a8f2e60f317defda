"""Wall time of one sweep on each executor, measured in one run (warm cache).

Runs CONFIG (default: the quickstart) with `executor.backend` sequential (one
thread), processes (2 local workers) and dask (a 2-worker LocalCluster), each
`--fresh` into its own folder, and checks the tables are byte-identical.
Usage: python bench/executor_scaling.py [CONFIG]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BACKENDS = [("sequential", 1), ("processes", 2), ("dask", 2)]


def main() -> None:
    config = Path(sys.argv[1] if len(sys.argv) > 1 else "configs/quickstart.yaml")
    exe = str(Path(sys.executable).parent / "embedbench")
    base = yaml.safe_load(config.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        warm = {**base, "output": f"{tmp}/warm"}
        Path(f"{tmp}/warm.yaml").write_text(yaml.safe_dump(warm), encoding="utf-8")
        subprocess.run([exe, "run", f"{tmp}/warm.yaml"], check=True, capture_output=True)
        times, tables = {}, {}
        for backend, n in BACKENDS:
            cfg = {
                **base,
                "output": f"{tmp}/{backend}",
                "executor": {"backend": backend, "n_jobs": n},
            }
            path = Path(f"{tmp}/{backend}.yaml")
            path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
            t0 = time.perf_counter()
            subprocess.run([exe, "run", str(path), "--fresh"], check=True, capture_output=True)
            times[backend] = time.perf_counter() - t0
            tables[backend] = Path(f"{tmp}/{backend}/retention.csv").read_bytes()
    same = len(set(tables.values())) == 1
    print(f"config {config} (warm cache, every cell re-evaluated)")
    print(f"{'executor':<34}{'wall s':>8}{'× sequential':>14}")
    for backend, n in BACKENDS:
        label = {
            "sequential": "sequential (1 thread)",
            "processes": f"processes ({n} workers)",
            "dask": f"dask LocalCluster ({n} workers)",
        }[backend]
        print(f"{label:<34}{times[backend]:>8.1f}{times['sequential'] / times[backend]:>14.2f}")
    print(f"tables byte-identical across executors: {same}")


if __name__ == "__main__":
    main()
