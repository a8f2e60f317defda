"""Config loading and validation: every mistake is one `UserError` line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedbench.config import Config, load_config, parse_config
from embedbench.errors import UserError
from embedbench.quantize import PRESETS as SEED_PRESETS
from embedbench.registry import check_config
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SEVEN = list(SEED_PRESETS)  # the seed's seven, in table order


def _base(**over) -> dict:
    data = {
        "name": "t",
        "providers": [{"name": "local", "model": "sentence-transformers/all-MiniLM-L6-v2"}],
        "tasks": ["STSBenchmark"],
        "techniques": ["binary"],
    }
    data.update(over)
    return data


def _write(tmp_path: Path, data, name: str = "c.yaml") -> Path:
    return write_config(tmp_path / name, data)


def _error(tmp_path: Path, data) -> str:
    """The one-line message load_config raises for `data` (a mapping or raw YAML text)."""
    with pytest.raises(UserError) as info:
        load_config(_write(tmp_path, data))
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert info.value.exit_code == 2
    return msg


# --- the quickstart config ---------------------------------------------------------------


def test_quickstart_loads():
    cfg = load_config(QUICKSTART)
    assert isinstance(cfg, Config)
    assert cfg.name == "quickstart"
    assert len(cfg.cells()) == 14
    assert cfg.techniques == SEVEN
    assert [t.name for t in cfg.tasks] == ["STSBenchmark", "Banking77Classification"]
    assert [p.label for p in cfg.providers] == ["local:sentence-transformers/all-MiniLM-L6-v2"]
    assert cfg.output_dir() == Path("results/quickstart")
    assert cfg.calibration.split == "train" and cfg.calibration.max_texts == 5000
    assert (
        cfg.evaluation.normalize is True
        and cfg.evaluation.bootstrap == 2000
        and cfg.evaluation.seeds == 5
    )
    # run order: provider, then task, then technique
    cells = cfg.cells()
    assert [(c.task, c.technique) for c in cells[:2]] == [
        ("STSBenchmark", "classic"),
        ("STSBenchmark", "scalar"),
    ]
    assert cells[7].task == "Banking77Classification"


def test_quickstart_hash_is_stable(tmp_path):
    h = load_config(QUICKSTART).hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert load_config(QUICKSTART).hash() == h
    # key order and explicitly written defaults do not change the hash
    data = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    shuffled = dict(reversed(list(data.items())))
    assert load_config(_write(tmp_path, shuffled)).hash() == h
    minimal = {k: v for k, v in data.items() if k not in ("calibration", "evaluation")}
    minimal["evaluation"] = {"seeds": 5}  # the one evaluation setting that is not a default
    assert parse_config(minimal).hash() == h
    # any real change does
    assert parse_config({**data, "evaluation": {"seed": 43}}).hash() != h
    assert parse_config({**data, "techniques": SEVEN[::-1]}).hash() != h


def test_output_dir_override():
    assert parse_config(_base(output="elsewhere/run1")).output_dir() == Path("elsewhere/run1")
    assert parse_config(_base()).output_dir() == Path("results/t")


def test_provider_shorthand_accepted():
    cfg = parse_config(_base(providers=["local:sentence-transformers/all-MiniLM-L6-v2"]))
    (p,) = cfg.providers
    assert (p.name, p.model, p.options) == ("local", "sentence-transformers/all-MiniLM-L6-v2", {})
    # the model part keeps any further colons (Bedrock ids have them)
    cfg = parse_config(_base(providers=["bedrock:amazon.titan-embed-text-v2:0"]))
    assert cfg.providers[0].model == "amazon.titan-embed-text-v2:0"


# --- one line per mistake ----------------------------------------------------------------


def test_unknown_top_level_field(tmp_path):
    msg = _error(tmp_path, _base(techniqes=["binary"]))
    assert "techniqes" in msg
    assert "did you mean 'techniques'" in msg
    assert "allowed: name, providers, tasks, techniques" in msg


def test_misspelled_required_field_points_at_the_typo(tmp_path):
    data = _base()
    data["techniqes"] = data.pop("techniques")
    msg = _error(tmp_path, data)
    assert "did you mean 'techniques'" in msg, msg


def test_unknown_nested_field(tmp_path):
    msg = _error(tmp_path, _base(evaluation={"bootsrap": 200}))
    assert "evaluation.bootsrap" in msg
    assert "did you mean 'bootstrap'" in msg
    # the allowed list is that of the nested section, not the top level
    assert "normalize" in msg and "samples_per_label" in msg
    assert "providers" not in msg


def test_unknown_provider_field(tmp_path):
    msg = _error(tmp_path, _base(providers=[{"name": "local", "model": "m", "optons": {}}]))
    assert "providers[0].optons" in msg
    assert "did you mean 'options'" in msg
    assert "allowed: name, model, options" in msg


@pytest.mark.parametrize("field", ["name", "providers", "tasks", "techniques"])
def test_missing_required_field(tmp_path, field):
    data = _base()
    del data[field]
    msg = _error(tmp_path, data)
    assert f"{field}: required field is missing" in msg


def test_wrong_type(tmp_path):
    msg = _error(tmp_path, _base(evaluation={"bootstrap": "many"}))
    assert "evaluation.bootstrap" in msg
    assert "integer" in msg
    assert "'many'" in msg


def test_below_minimum(tmp_path):
    msg = _error(tmp_path, _base(evaluation={"bootstrap": 5}))
    assert "evaluation.bootstrap" in msg
    assert "greater than or equal to 100" in msg
    msg = _error(tmp_path, _base(calibration={"max_texts": 0}))
    assert "calibration.max_texts" in msg and "greater than or equal to 2" in msg


def test_duplicate_technique(tmp_path):
    msg = _error(tmp_path, _base(techniques=["binary", "scalar", "binary"]))
    assert msg.split(": ", 1)[1].startswith("techniques: listed twice: binary")
    assert "scalar" not in msg.split("listed twice:")[1].split("(")[0]


def test_duplicate_task(tmp_path):
    msg = _error(tmp_path, _base(tasks=["STSBenchmark", "STSBenchmark"]))
    assert "tasks: listed twice: STSBenchmark" in msg


@pytest.mark.parametrize("bad", ["a/b", "../up", "", "-lead", "sp ace"])
def test_bad_name(tmp_path, bad):
    msg = _error(tmp_path, _base(name=bad))
    assert "name:" in msg
    assert "letters, digits" in msg


def test_empty_providers(tmp_path):
    msg = _error(tmp_path, _base(providers=[]))
    assert "providers" in msg and "at least 1" in msg


def test_provider_string_without_family(tmp_path):
    msg = _error(tmp_path, _base(providers=["all-MiniLM-L6-v2"]))
    assert "providers[0]" in msg


def test_several_mistakes_a_line_each(tmp_path):
    """Every mistake in one pass, a line each; a misspelt field is named once, as a typo."""
    with pytest.raises(UserError) as info:
        load_config(_write(tmp_path, _base(name="a/b", tasks=[], evaluation={"bootstrap": 1})))
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and info.value.exit_code == 2
    assert any(".name" in x or ": name" in x for x in lines)
    assert any("tasks" in x for x in lines) and any("evaluation.bootstrap" in x for x in lines)
    with pytest.raises(UserError) as info:
        load_config(
            _write(
                tmp_path,
                {k: v for k, v in _base().items() if k != "tasks"} | {"taks": ["STSBenchmark"]},
            )
        )
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and "did you mean 'tasks'" in lines[0]


def test_a_key_written_twice_names_both_lines(tmp_path):
    text = "name: t\nname: u\nproviders: [local:m]\ntasks: [STSBenchmark]\ntechniques: [binary]\n"
    msg = _error(tmp_path, text)
    assert "key 'name' is written twice (lines 1 and 2)" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_not_a_mapping(tmp_path, text):
    msg = _error(tmp_path, text)
    assert "expected a mapping" in msg
    assert "c.yaml" in msg


def test_not_a_mapping_parse_config():
    with pytest.raises(UserError, match="expected a mapping"):
        parse_config(["name", "t"])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: t\ntasks: [STSBenchmark\ntechniques: [binary]\n", 3),
        ("name: t\n  bad: indent: here\n", 2),
        ("name: t\nproviders:\n\t- local:m\n", 3),
    ],
)
def test_invalid_yaml_mentions_line(tmp_path, text, line):
    msg = _error(tmp_path, text)
    assert "not valid YAML" in msg
    assert f"line {line}" in msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as info:
        load_config(tmp_path / "nope.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert "nope.yaml" in msg and "does not exist" in msg


def test_non_utf8_file_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserError):
        load_config(path)


# --- names resolve (registry.check_config) -----------------------------------------------


def _check_error(**over) -> str:
    cfg = parse_config(_base(**over))
    with pytest.raises(UserError) as info:
        check_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_check_config_quickstart_ok():
    check_config(load_config(QUICKSTART))


def test_check_config_shorthand_ok():
    check_config(parse_config(_base(providers=["local:sentence-transformers/all-MiniLM-L6-v2"])))


def test_unknown_provider_family():
    msg = _check_error(providers=[{"name": "bedrok", "model": "amazon.titan-embed-text-v2:0"}])
    assert "providers[0].name" in msg
    assert "unknown provider 'bedrok'" in msg
    assert "did you mean 'bedrock'" in msg
    assert "allowed: bedrock, cohere, local" in msg


def test_unknown_technique():
    msg = _check_error(techniques=["scalar", "binnary"])
    assert "unknown technique 'binnary'" in msg
    assert "did you mean 'binary'" in msg


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("svd+foo", ["unknown code", "'foo'", "allowed: ", "binary", "int8", "ternary"]),
        ("foo+binary", ["unknown transform", "'foo'", "allowed: ", "svd"]),
    ],
)
def test_bad_technique_composition(spec, needles):
    msg = _check_error(techniques=[spec])
    for needle in needles:
        assert needle in msg, msg


def test_unknown_task():
    msg = _check_error(tasks=["STSBenchmarkk"])
    assert "unknown task 'STSBenchmarkk'" in msg
    assert "did you mean 'STSBenchmark" in msg
    assert "embedbench list tasks" in msg


def test_unknown_task_suggests_the_closest_runnable_task():
    from embedbench.tasks import known_tasks

    msg = _check_error(tasks=["STSBenchmarkk"])
    assert "did you mean 'STSBenchmark'?" in msg, msg
    assert {"STSBenchmark", "Banking77Classification"} <= set(known_tasks())


def test_unsupported_task_type():
    import mteb

    assert mteb.get_task("RuSciBenchCitedCountRegression").metadata.type == "Regression"
    msg = _check_error(tasks=["STSBenchmark", "RuSciBenchCitedCountRegression"])
    assert "RuSciBenchCitedCountRegression" in msg
    assert "Regression" in msg
    assert "supported kinds:" in msg
    assert "STS" in msg and "Classification" in msg
