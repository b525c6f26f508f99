"""What a result was measured on: absolute times mean nothing without it."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


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
