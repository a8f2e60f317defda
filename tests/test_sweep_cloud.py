"""A sweep over the fake Bedrock and Cohere servers, through the real SDKs, end to end."""

from __future__ import annotations

import csv
import json

import pytest

from embedbench import api
from tests.conftest import write_config
from tests.test_providers_cloud import FAST, offline_env, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # end to end through the real model and mteb

TECHNIQUES = ["classic", "scalar", "binary", "haar+binary"]  # no PCA: 300 texts < 1536 dims
NATIVE = ["native-int8", "native-uint8", "native-binary", "native-ubinary"]


def test_cloud_sweep_writes_a_retention_table(tmp_path, server, data_dir):  # noqa: F811
    server.rates = {"throttle": 0.1, "500": 0.03}  # real retries along the way
    cfg = {
        "name": "cloud",
        "providers": [
            {
                "name": "bedrock",
                "model": "amazon.titan-embed-text-v1",
                "options": {"endpoint_url": server.url, "n_jobs": 8, **FAST},
            },
            {
                "name": "cohere",
                "model": "embed-english-v3.0",
                "options": {"base_url": server.url, "n_jobs": 2, **FAST},
            },
        ],
        "tasks": ["STSBenchmark"],
        "techniques": TECHNIQUES + NATIVE,
        "calibration": {"max_texts": 300},
        "evaluation": {"bootstrap": 200, "mc_target": 0.05},
        "output": str(tmp_path / "out"),
    }
    path = write_config(tmp_path / "cloud.yaml", cfg)
    cache = tmp_path / "cache.sqlite"

    _, before = api.plan(path, data_dir, cache)
    assert [r.new for r in before] == [r.texts for r in before] and all(r.usd for r in before)

    result, out = api.run(path, data_dir, cache)
    rows = list(csv.DictReader((out / "retention.csv").open(encoding="utf-8")))
    assert [(r["provider"], r["technique"]) for r in rows] == [
        *(("bedrock", t) for t in TECHNIQUES),  # Titan v1 has no native codes: skipped
        *(("cohere", t) for t in TECHNIQUES + NATIVE),
    ]
    cohere = {r["technique"]: r for r in rows if r["provider"] == "cohere"}
    # Cohere's sign bits of the very same floats, decoded as meant, score as our binary
    assert cohere["native-binary"]["score"] == cohere["binary"]["score"]
    assert cohere["native-ubinary"]["score"] == cohere["binary"]["score"]
    assert cohere["native-uint8"]["score"] == cohere["native-int8"]["score"]
    assert (
        cohere["native-int8"]["bits_per_dim"] == "8"
        and cohere["native-binary"]["size_multiplier"] == "32"
    )
    for r in rows:
        assert float(r["float_score"]) > 0.3  # the fake vectors carry word overlap
        if r["technique"] != "classic":
            assert float(r["ci_low"]) <= float(r["retention"]) <= float(r["ci_high"])
    manifest = json.loads((out / "manifest.json").read_text())
    titan = manifest["providers"]["bedrock:amazon.titan-embed-text-v1"]
    assert titan["calls"] == titan["texts_embedded"] > 2000  # one text a call
    assert titan["tokens"] > 0 and manifest["texts_from_cache"] == 0
    assert len(manifest["skipped_cells"]) == len(NATIVE)
    # every text paid for once: all received texts are the unique ones plus failed retries
    assert server.texts_received - server.texts_failed == result.texts_embedded

    _, after = api.plan(path, data_dir, cache)
    assert all(r.new == 0 and r.calls == 0 for r in after)
