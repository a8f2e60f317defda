"""Run every benchmark in bench/ in turn (make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "quantize_throughput.py",
    "faiss_codec_throughput.py",
    "rotation_throughput.py",
    "turbo_throughput.py",
    "search_throughput.py",
    "fetch_scaling.py",
    "sweep_overhead.py",
    "executor_scaling.py",
    "cli_latency.py",
]

if __name__ == "__main__":
    failed = 0
    for name in SCRIPTS:
        if not (HERE / name).exists():
            continue
        print(f"\n== {name} ==", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / name)]).returncode
    sys.exit(failed)
