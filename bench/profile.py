"""Where a request's time goes inside the service: py-spy samples gunicorn's workers while
one read repeats, and the samples are summed per function (`BENCH_TAX_PROFILE=1 make bench-tax`).

py-spy reads the workers' stacks from outside (ptrace), so the service runs unchanged:
gunicorn, the gthread worker, the sockets, the driver, as deployed. Idle threads (a
worker's main loop waiting in select, the driver's monitors) are left out with --idle
off; what remains is time spent on requests.
"""
from __future__ import annotations

import subprocess
import threading
from collections import Counter
from pathlib import Path

PY_SPY = Path(__file__).resolve().parents[1] / ".tools" / "bench-venv" / "bin" / "py-spy"
TOP = 15
# The parts of a request worth naming, each by the functions that contain it (any one).
PARTS = {
    "the app (Flask, from WSGI call to response)": ["wsgi_app (flask/app.py)"],
    "the view (arguments, store, encoding)": ["dispatch_request (flask/views.py)"],
    "reading the database (driver, network, BSON)": ["_find (service/repository.py)"],
    "encoding records to JSON": ["dump (marshmallow/schema.py)", "record_json (service/schemas.py)"],
    "writing the answer (gunicorn)": ["write (gunicorn/http/wsgi.py)"],
    "handing connections between threads (gunicorn)": ["defer (gunicorn/workers/gthread.py)"],
}


def record(master_pid: int, seconds: int, out: Path, load) -> Path:
    """Sample the master's workers for `seconds` while `load()` runs in a thread until then."""
    done = threading.Event()

    def repeat():
        while not done.is_set():
            load()

    thread = threading.Thread(target=repeat, daemon=True)
    thread.start()
    try:
        subprocess.run([str(PY_SPY), "record", "--pid", str(master_pid), "--subprocesses", "--nonblocking",
                        "--rate", "500", "--duration", str(seconds), "--format", "raw", "--output", str(out)],
                       check=True, capture_output=True, timeout=seconds + 60)
    finally:
        done.set()
        thread.join(10)
    return out


def _frames(stack: str) -> list[str]:
    """'process;thread;func (file:line);...' into function names with their file, no line numbers."""
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        if where:
            frames.append(f"{name} ({where.rsplit(':', 1)[0].rsplit('/site-packages/', 1)[-1]})")
    return frames


def summarize(collapsed: Path) -> dict:
    """Per function: share of request samples spent in it (total) and in its own code (own)."""
    total, own, samples = Counter(), Counter(), 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = _frames(stack)
        if not frames:
            continue
        samples += int(count)
        for name in set(frames):
            total[name] += int(count)
        own[frames[-1]] += int(count)

    def share(n: int) -> float:
        return round(100 * n / samples, 1) if samples else 0.0
    parts = {part: share(sum(total[name] for name in names)) for part, names in PARTS.items()}
    return {"samples": samples, "parts_percent": parts,
            "top_total_percent": [[name, share(n)] for name, n in total.most_common(TOP)],
            "top_own_percent": [[name, share(n)] for name, n in own.most_common(TOP)]}
