"""How `fetch` scales with `n_jobs` for a one-text-a-call model (Titan v1 on Bedrock).

Starts the loopback fake server (tests/fakeserver.py) in a child process with 50 ms
of latency per call, then fetches unique texts through the real boto3 client with a
fresh cache for each run: 200 texts at n_jobs=1, 1,600 at n_jobs 4 and 16. Prints
texts/s and the speed-up over n_jobs=1 (the target is ≥ 12× at 16).

    .venv/bin/python bench/fetch_scaling.py [--latency 0.05] [--texts 1600]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MODEL = "amazon.titan-embed-text-v1"


def serve(latency: float, ready: mp.Queue, stop: mp.Event) -> None:
    """Child process: run the fake server until told to stop."""
    from fakeserver import FakeServer

    with FakeServer(latency=latency) as server:
        server.record = False
        ready.put(server.url)
        stop.wait()


def run(url: str, n_texts: int, n_jobs: int, tag: str) -> tuple[float, int]:
    """Seconds to fetch `n_texts` unique texts, and the calls made."""
    from embedbench.cache import EmbeddingCache
    from embedbench.providers.base import FetchStats, fetch
    from embedbench.providers.bedrock import BedrockProvider

    texts = [f"{tag} text {i}: a sentence about topic {i % 97}" for i in range(n_texts)]
    provider = BedrockProvider(MODEL, endpoint_url=url, n_jobs=n_jobs)
    provider.embed_batch(["warm up the client"], "document")  # client creation, imports
    with tempfile.TemporaryDirectory() as tmp, EmbeddingCache(Path(tmp) / "c.sqlite") as cache:
        stats = FetchStats()
        start = time.perf_counter()
        out = fetch(provider, texts, "document", cache, stats)
        seconds = time.perf_counter() - start
    assert out.shape == (n_texts, 1536)
    provider.close()
    return seconds, stats.calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call")
    parser.add_argument("--texts", type=int, default=1600, help="texts at n_jobs > 1")
    parser.add_argument("--texts-serial", type=int, default=200, help="texts at n_jobs=1")
    args = parser.parse_args()

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        os.environ.pop(name, None)

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    child = ctx.Process(target=serve, args=(args.latency, ready, stop), daemon=True)
    child.start()
    try:
        url = ready.get(timeout=30)
        rows = []
        for n_jobs, n in ((1, args.texts_serial), (4, args.texts), (16, args.texts)):
            seconds, calls = run(url, n, n_jobs, tag=f"j{n_jobs}")
            rows.append((n_jobs, n, calls, seconds, n / seconds))
    finally:
        stop.set()
        child.join(timeout=10)

    base = rows[0][4]
    print(f"Titan v1 on the fake Bedrock, {args.latency * 1000:.0f} ms a call, one text a call")
    print(f"{'n_jobs':>6} {'texts':>6} {'calls':>6} {'seconds':>8} {'texts/s':>8} {'vs 1':>6}")
    for n_jobs, n, calls, seconds, rate in rows:
        print(f"{n_jobs:>6} {n:>6} {calls:>6} {seconds:>8.2f} {rate:>8.1f} {rate / base:>5.1f}x")
    ideal = 16 / args.latency
    print(f"ideal at 16 jobs: {ideal:.0f} texts/s; target >= 12x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
