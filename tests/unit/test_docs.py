"""The docs quote only what the code has: settings and their defaults, make targets, bench defaults."""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

from service.config import Settings

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULTS = {f.metadata["env"]: f.metadata["default"] for f in fields(Settings)}


def table_rows(path: Path, heading: str) -> list[list[str]]:
    """The cells of each table row under `heading`, up to the next heading of that level."""
    level = heading.split(" ")[0]
    section = path.read_text(encoding="utf-8").split(f"\n{heading}\n")[1].split(f"\n{level} ")[0]
    return [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in section.splitlines() if line.startswith("| `")]


CONFIGURATION = {row[0].strip("`"): row[1] for row in table_rows(ROOT / "docs" / "configuration.md",
                                                                 "## Settings")}


def test_every_setting_is_in_the_configuration_table():
    assert set(DEFAULTS) <= set(CONFIGURATION), sorted(set(DEFAULTS) - set(CONFIGURATION))


def test_every_default_in_the_configuration_table_matches_the_code():
    for name, default in DEFAULTS.items():
        expected = "(required)" if default is None else (f"`{default}`" if default else "(empty)")
        assert CONFIGURATION[name] == expected, name


def code_of(path: Path) -> str:
    """Inline code spans and fenced blocks: where the docs quote commands."""
    text = path.read_text(encoding="utf-8")
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)))


def make_targets() -> set[str]:
    """Every target the Makefile and bench.mk define."""
    makefiles = (ROOT / "Makefile", ROOT / "bench" / "bench.mk")
    return {m for path in makefiles for m in re.findall(r"^([a-z][a-z0-9-]*):", path.read_text(), flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_make_target_the_docs_quote_exists(doc):
    quoted = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", code_of(doc)))
    assert quoted <= make_targets(), sorted(quoted - make_targets())


# A default quoted in prose reads "`NAME` (64 KiB)": a number and a unit, converted to
# the setting's own unit (milliseconds for *_MS, bytes or seconds otherwise).
QUOTE = re.compile(r"`([A-Z][A-Z0-9_]+)` \(([0-9][0-9,.]*) ?(KiB|MiB|ms|s|h)?[);,]")
UNITS = {"KiB": 2**10, "MiB": 2**20, "ms": 0.001, "s": 1, "h": 3600, None: 1}


def quoted_defaults() -> list[tuple[str, str, float]]:
    """(document, setting, value in the setting's unit) for every default quoted in prose."""
    found = []
    for doc in DOCS:
        for name, number, unit in QUOTE.findall(doc.read_text(encoding="utf-8")):
            if name in DEFAULTS:
                value = float(number.replace(",", "")) * UNITS[unit or None]
                value = value * 1000 if name.endswith("_MS") else value
                found.append((str(doc.relative_to(ROOT)), name, value))
    return found


def test_the_docs_quote_settings_defaults_in_prose():
    assert len(quoted_defaults()) >= 5  # the pattern still finds the quotes this check exists for


@pytest.mark.parametrize("doc, name, value", quoted_defaults())
def test_every_default_quoted_in_prose_matches_the_code(doc, name, value):
    assert value == float(DEFAULTS[name]), f"{doc}: {name} quoted as {value:.0f}, code: {DEFAULTS[name]}"


def test_the_bench_settings_table_gives_the_benchmarks_defaults(monkeypatch):
    for name in [n for n in os.environ if n.startswith("BENCH_")]:
        monkeypatch.delenv(name)
    # Plan reads some defaults when its module loads: load it again without the shell's overrides.
    plan = importlib.reload(importlib.import_module("bench.run")).Plan()
    for names, defaults, _ in table_rows(ROOT / "bench" / "README.md", "## Settings"):
        for name, default in zip(names.split(", "), defaults.split(", ")):
            name, default = name.strip("`"), default.strip("`").split(" ")[0]
            if name.startswith("BENCH_") and hasattr(plan, name[6:].lower()):
                code = getattr(plan, name[6:].lower())
                code = ",".join(map(str, code)) if isinstance(code, list) else str(code)
                assert default in (code, code.removesuffix(".0")), name
            elif name in DEFAULTS and name != "MONGODB_URI":
                assert default == DEFAULTS[name], name
