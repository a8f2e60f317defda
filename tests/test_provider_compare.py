"""The README's provider comparison is generated from results/providers, not typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedbench.compare.providers import BEGIN, END, comparison, readme_section, write_readme
from embedbench.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "results" / "providers"


@pytest.fixture(scope="module")
def generated() -> str:
    if not (RUN / "retention.csv").is_file():
        pytest.skip(
            "results/providers is not generated yet (embedbench run configs/providers.yaml)"
        )
    return comparison(RUN)


def test_readme_section_is_the_generated_comparison(generated):
    """README.md between the markers equals what `embedbench providers results/providers`
    prints (regenerate with `--readme README.md`)."""
    assert readme_section(ROOT / "README.md") == generated


def test_float_rows_equal_published_to_4_decimals(generated):
    text = generated
    rows = [
        line
        for line in text.split("By size budget")[0].splitlines()
        if line.startswith("| all-mpnet-base-v2 |")
    ]
    assert len(rows) == 3 and all("| yes |" in line for line in rows)


def test_write_readme_replaces_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{BEGIN}\nold\n{END}\ntail\n", encoding="utf-8")
    write_readme(readme, "new\n")
    assert readme.read_text(encoding="utf-8") == f"head\n{BEGIN}\nnew\n{END}\ntail\n"
    assert readme_section(readme) == "new\n"
    (tmp_path / "other.md").write_text("no markers", encoding="utf-8")
    with pytest.raises(UserError, match="markers"):
        write_readme(tmp_path / "other.md", "x")
    (tmp_path / "swapped.md").write_text(f"{END}\n{BEGIN}\n", encoding="utf-8")
    with pytest.raises(UserError, match="in this order"):
        write_readme(tmp_path / "swapped.md", "x")
    with pytest.raises(UserError, match="cannot read"):
        readme_section(tmp_path / "absent.md")
