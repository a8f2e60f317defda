"""How fast the CLI answers: wall time of a few commands as a ratio to `python -c pass`.

Medians of `--repeats` runs, all measured in this one run: `embedbench --help`,
`embedbench list techniques`, `embedbench validate configs/quickstart.yaml`, next to
`python -c pass` and `python -c "import mteb"` (validate resolves task names with mteb,
so its floor is mteb's import). Targets: --help ≤ 3× python; validate ≤ import mteb + 1 s.
Usage: python bench/cli_latency.py [--repeats N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from common import median_seconds

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    repeats = ap.parse_args().repeats
    exe = str(Path(sys.executable).parent / "embedbench")

    def timed(*cmd: str) -> float:
        return median_seconds(
            lambda: subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True), repeats
        )

    base = timed(sys.executable, "-c", "pass")
    mteb = timed(sys.executable, "-c", "import mteb")
    rows = {
        "embedbench --help": timed(exe, "--help"),
        "embedbench list techniques": timed(exe, "list", "techniques"),
        "embedbench validate configs/quickstart.yaml": timed(
            exe, "validate", "configs/quickstart.yaml"
        ),
    }
    print(f"python -c pass: {base:.3f} s; python -c 'import mteb': {mteb:.3f} s")
    for name, t in rows.items():
        print(f"{name}: {t:.3f} s = {t / base:.2f}× python -c pass")
    print(
        f"--help {rows['embedbench --help'] / base:.2f}× (target ≤ 3); validate "
        f"{rows['embedbench validate configs/quickstart.yaml'] - mteb:+.2f} s over import mteb "
        "(target ≤ +1 s)"
    )


if __name__ == "__main__":
    main()
