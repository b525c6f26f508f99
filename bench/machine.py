"""What a result was measured on, from which commit, by which command: figures mean nothing without it."""
from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

from service.config import MEMORY_URI, Settings

REPO = Path(__file__).resolve().parents[1]
# Variables that change what a benchmark measures: its own knobs and the service's settings.
BENCH_PREFIXES = ("BENCH_", "SOAK_", "TUNE_", "SLOW_")
SERVICE_VARIABLES = {f.metadata["env"] for f in fields(Settings)} | {"GUNICORN_CMD_ARGS"}
# Where files go and the cursor key change nothing measured (and a key must never be written down).
UNMEASURED = {"BENCH_RESULTS", "BENCH_OUT", "CURSOR_SECRET"}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _k6_version(k6: Path) -> str | None:
    if not k6.exists():
        return None
    return subprocess.run([str(k6), "version"], capture_output=True, text=True).stdout.split()[1]


def describe(k6: Path | None = None) -> dict:
    """CPU, memory, OS and tool versions of this machine, and when."""
    return {
        "measured_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "k6": _k6_version(k6) if k6 else None,
        "ci": os.environ.get("CI") == "true",
        # Other work on the machine skews every figure: say how busy it was.
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def _git(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)


def commit(checkout: Path = REPO) -> str | None:
    """HEAD's hash, with "-dirty" when code differs from it (results and docs being written do not count)."""
    head = _git(checkout, "rev-parse", "HEAD")
    if head.returncode:
        return None
    dirty = _git(checkout, "diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench/results", ":(exclude)docs",
                 ":(exclude)*.md").returncode
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _shown(value: str) -> str:
    """A value as it may appear in a committed file: a URI's credentials masked."""
    return re.sub(r"//[^/@]*@", "//...@", value)


def _measured(name: str, value: str) -> bool:
    """Whether a variable changes what a benchmark measures."""
    if name in UNMEASURED or (name == "MONGODB_URI" and value == MEMORY_URI):
        return False  # memory:// is make's default, which the benchmarks read as "start FerretDB"
    return name.startswith(BENCH_PREFIXES) or name in SERVICE_VARIABLES


def _checkouts(value: str) -> str:
    """Other checkouts a benchmark serves (…_BASELINE), named by commit: a path is this machine's only."""
    named = [(commit(Path(path)) or "unknown")[:12] for path in value.split(",") if path]
    return ",".join(f"<checkout of {name}>" for name in named)


def command(target: str, environ: dict | None = None) -> str:
    """`make <target>` with every override that changes what it measures, as one could retype it."""
    environ = os.environ if environ is None else environ
    shown = {name: _checkouts(value) if name.endswith("_BASELINE") else _shown(value)
             for name, value in environ.items() if _measured(name, value)}
    overrides = [f"{name}={shlex.quote(value)}" for name, value in sorted(shown.items())]
    return " ".join([*overrides, "make", target])


def provenance(target: str, k6: Path | None = None) -> dict:
    """What every result file records: the command, the commit and the machine."""
    return {"command": command(target), "commit": commit(), "machine": describe(k6)}
