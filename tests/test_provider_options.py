"""Provider options: one validated model per family, and the keys they derive.

The keys below were computed on the code before the options became models (commit
37dfc6d): a provider's key in results (`ProviderSpec.key`) and its embedding-cache
namespaces (`Provider.namespace`) must stay byte-identical, or the persistent cache
and the committed results would no longer be found.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedbench.config import ProviderSpec
from embedbench.errors import UserError
from embedbench.providers.bedrock import BedrockProvider
from embedbench.providers.cohere_api import CohereProvider
from embedbench.providers.local import LocalProvider
from embedbench.providers.options import BedrockOptions, CohereOptions, LocalOptions
from embedbench.registry import build_provider

EXE = str(Path(sys.executable).parent / "embedbench")

# (family, model, options, key, {purpose/output: namespace hash}), pinned before the change
PINNED = [
    (
        "local",
        "sentence-transformers/all-MiniLM-L6-v2",
        {},
        "local:sentence-transformers/all-MiniLM-L6-v2",
        {
            "query/float": "b9a8979e387d25dbf833b5b8c44d3dec",
            "document/float": "b9a8979e387d25dbf833b5b8c44d3dec",
        },
    ),
    (
        "local",
        "all-MiniLM-L6-v2",
        {"batch_size": 8, "device": "cpu"},
        "local:all-MiniLM-L6-v2",
        {
            "query/float": "b9a8979e387d25dbf833b5b8c44d3dec",
            "document/float": "b9a8979e387d25dbf833b5b8c44d3dec",
        },
    ),
    (
        "bedrock",
        "amazon.titan-embed-text-v1",
        {"region": "us-east-1", "n_jobs": 2},
        "bedrock:amazon.titan-embed-text-v1",
        {
            "query/float": "4a484f33376b7e9407da89fa1a13ae52",
            "document/float": "4a484f33376b7e9407da89fa1a13ae52",
        },
    ),
    (
        "bedrock",
        "amazon.titan-embed-text-v2:0",
        {"dimensions": 512, "normalize": False},
        "bedrock:amazon.titan-embed-text-v2:0@e53a0a3f",
        {
            "query/float": "623cf18cd232802d4acf74d5ed7fc009",
            "document/float": "623cf18cd232802d4acf74d5ed7fc009",
        },
    ),
    (
        "bedrock",
        "amazon.titan-embed-text-v2:0",
        {"dimensions": 1024, "native_types": ["binary"]},
        "bedrock:amazon.titan-embed-text-v2:0@0ec47660",
        {
            "query/float": "52ca90bf0241fe93a11f028f0a614ada",
            "query/binary": "2e4387e9214f576d4a092a6fc87334eb",
            "document/float": "52ca90bf0241fe93a11f028f0a614ada",
            "document/binary": "2e4387e9214f576d4a092a6fc87334eb",
        },
    ),
    (
        "bedrock",
        "amazon.titan-embed-image-v1",
        {"dimensions": 384, "timeout": 5},
        "bedrock:amazon.titan-embed-image-v1@1e8973ec",
        {
            "query/float": "e7d31cd8645942e95264f4e2244a2151",
            "document/float": "e7d31cd8645942e95264f4e2244a2151",
        },
    ),
    (
        "bedrock",
        "us.cohere.embed-english-v3",
        {"truncate": "START", "native_types": ["ubinary", "int8"], "batch_size": 32},
        "bedrock:us.cohere.embed-english-v3@bdc982dc",
        {
            "query/float": "6e63742dcac13ab66f27af5553f30283",
            "query/ubinary": "ec355c12c3a01ef1a0bbe69a63b7c860",
            "query/int8": "6550883eab6dcd56b8384c38e3e728fb",
            "document/float": "5531a77bef5628ab5ba3771cf4bfcb6e",
            "document/ubinary": "e69e510f66a69a4cfb32d6af0955c0f0",
            "document/int8": "9a337d67d63c7ccadeb43a47d8b56a12",
        },
    ),
    (
        "bedrock",
        "cohere.embed-multilingual-v3",
        {},
        "bedrock:cohere.embed-multilingual-v3",
        {
            "query/float": "6113d896dfcf357a3587565c7e18d1e8",
            "document/float": "7167a1e2f5a655785630c40a2b039c17",
        },
    ),
    (
        "cohere",
        "embed-english-v3.0",
        {"api_key": "k-123456", "base_url": "http://127.0.0.1:1"},
        "cohere:embed-english-v3.0",
        {
            "query/float": "8e57c59c64a17a07e06f97e8eb9167b9",
            "document/float": "08cc64f78e289349fcbd5aae772bfe23",
        },
    ),
    (
        "cohere",
        "embed-v4.0",
        {"output_dimension": 512, "truncate": "NONE", "native_types": "int8"},
        "cohere:embed-v4.0@d06c841b",
        {
            "query/float": "815a7ac3e4b6c1d4f205a671f9d13d75",
            "query/int8": "7511d841d1d2b56a15ab63af139e2029",
            "document/float": "44c84f09afd6828e28865b27ca9755c0",
            "document/int8": "563e0abca7fd382c449cd107f3b7bdf7",
        },
    ),
    (
        "cohere",
        "embed-english-light-v3.0",
        {"truncate": "END", "requests_per_minute": 600, "max_attempts": 3},
        "cohere:embed-english-light-v3.0@3daa0439",
        {
            "query/float": "c36d66305f07919a7700b1daadb378e6",
            "document/float": "4e35a14cf7f6fb73a376049f7cc5a58e",
        },
    ),
]


@pytest.mark.parametrize(("family", "model", "options", "key", "spaces"), PINNED)
def test_keys_are_byte_identical_to_the_pinned_ones(family, model, options, key, spaces):
    spec = ProviderSpec(name=family, model=model, options=options)
    assert spec.key == key
    provider = build_provider(spec)
    for where, digest in spaces.items():
        purpose, output = where.split("/")
        assert provider.namespace(purpose, output)[0] == digest, where


@pytest.mark.parametrize(
    ("family", "model", "typo", "meant"),
    [
        ("local", "all-MiniLM-L6-v2", "batch_sise", "batch_size"),
        ("local", "all-MiniLM-L6-v2", "devise", "device"),
        ("bedrock", "amazon.titan-embed-text-v2:0", "dimension", "dimensions"),
        ("cohere", "embed-v4.0", "output_dimensions", "output_dimension"),
        ("cohere", "embed-english-v3.0", "truncat", "truncate"),
    ],
)
def test_a_misspelt_option_is_rejected_never_hashed(family, model, typo, meant):
    spec = ProviderSpec(name=family, model=model, options={typo: 8})
    for attempt in (lambda: spec.key, lambda: build_provider(spec)):
        with pytest.raises(UserError, match=f"did you mean '{meant}'") as info:
            attempt()
        assert f"unknown option for {family} '{typo}'" in str(info.value)
        assert "\n" not in str(info.value)


def test_defaults_live_in_the_options_models():
    local = LocalProvider("all-MiniLM-L6-v2")
    assert isinstance(local.options, LocalOptions)
    assert (local.batch_size, local.device) == (256, "cpu")
    cohere = CohereProvider("embed-english-v3.0", api_key="sk-secret-value")
    assert isinstance(cohere.options, CohereOptions)
    assert (cohere.batch_size, cohere.n_jobs, cohere.truncate, cohere.timeout) == (
        96,
        4,
        "END",
        60.0,
    )
    assert cohere.policy.max_attempts == 8 and cohere.limiter.interval == 0
    assert "sk-secret" not in repr(cohere.options)
    titan = BedrockProvider("amazon.titan-embed-text-v2:0")
    assert isinstance(titan.options, BedrockOptions)
    assert (titan.batch_size, titan.dim, titan.normalize, titan.connect_timeout) == (
        1,
        1024,
        True,
        10.0,
    )
    assert BedrockProvider("cohere.embed-english-v3").batch_size == 96
    # an option set to its default is still a choice the key records, as before
    assert ProviderSpec(
        name="cohere", model="embed-english-v3.0", options={"truncate": "END"}
    ).key != ("cohere:embed-english-v3.0")


def test_option_values_are_checked_in_one_line():
    with pytest.raises(UserError, match="timeout must be a number greater than 0; got 'abc'"):
        CohereProvider("embed-english-v3.0", timeout="abc")
    with pytest.raises(UserError, match="batch_size must be a positive integer; got 0"):
        LocalProvider("all-MiniLM-L6-v2", batch_size=0)
    with pytest.raises(UserError, match="normalize must be true or false"):
        BedrockProvider("amazon.titan-embed-text-v2:0", normalize="yes")
    with pytest.raises(UserError, match=r"bedrock:amazon\.titan-embed-text-v1: batch_size"):
        BedrockProvider("amazon.titan-embed-text-v1", batch_size="8")


BATCH_SISE = """\
name: t
providers:
  - name: local
    model: sentence-transformers/all-MiniLM-L6-v2
    options: {batch_sise: 8}
tasks: [STSBenchmark]
techniques: [binary]
"""


def test_cli_rejects_a_misspelt_local_option_with_exit_code_2(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(BATCH_SISE, encoding="utf-8")
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env = {**os.environ, **offline, "EMBEDBENCH_CACHE": str(tmp_path / "cache.sqlite")}
    out = tmp_path / "out"
    procs = [
        subprocess.Popen([EXE, *args], cwd=tmp_path, env=env, text=True, stderr=subprocess.PIPE)
        for args in (["validate", str(config)], ["run", str(config), "--output", str(out)])
    ]
    for proc in procs:
        stderr = proc.communicate(timeout=120)[1]
        assert proc.returncode == 2, stderr
        assert "Traceback" not in stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert "unknown option for local 'batch_sise' (did you mean 'batch_size'?)" in lines[0]
    assert not out.exists()  # nothing ran


def test_native_outputs_asked_by_a_technique_join_a_configured_string():
    spec = ProviderSpec(name="cohere", model="embed-english-v3.0", options={"native_types": "int8"})
    assert build_provider(spec, ("ubinary",)).native_types == ("int8", "ubinary")
