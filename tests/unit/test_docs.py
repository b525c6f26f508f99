"""The README's configuration table covers every setting the service reads."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from service.config import Settings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("\n## Configuration\n")[1].split("\n## ")[0]
ROWS = [line for line in SECTION.splitlines() if line.startswith("| `")]


def test_every_setting_is_in_the_readme_table():
    rows = {line.split("`")[1] for line in ROWS}
    variables = {f.metadata["env"] for f in fields(Settings)}
    assert variables <= rows, sorted(variables - rows)


def test_every_default_in_the_readme_matches_the_code():
    table = {line.split("`")[1]: line.split("|")[2].strip() for line in ROWS}
    for f in fields(Settings):
        default = f.metadata["default"]
        expected = "(required)" if default is None else (f"`{default}`" if default else "(empty)")
        assert table[f.metadata["env"]] == expected, f.metadata["env"]
