"""The service exactly as `make run` starts it (memory://, one worker): feed walks and ETags."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from . import harness

# What `make run` reads: nothing of the suite's database, a feed window of one second.
DROPPED = ("MONGODB_URI", "MONGODB_DATABASE", "BASE_URL", "API_KEYS_FILE", "CURSOR_SECRET")


@pytest.fixture
def make_run(tmp_path):
    """`make run` on a free port, stopped (its whole process group) after the test."""
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(FEED_SETTLE_SECONDS="1", METRICS_PORT=str(harness.free_port()), XDG_RUNTIME_DIR=str(tmp_path))
    with open(tmp_path / "make-run.log", "wb") as log:
        process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=harness.REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert harness.wait_until(lambda: harness.answers(f"{url}/healthz"), 180), \
            (tmp_path / "make-run.log").read_text(errors="replace")[-2000:]
        yield harness.Client(url)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def test_make_run_serves_the_feed_once_in_order(make_run):
    api = make_run
    stored = [api.create("make-run", {"n": n})["id"] for n in range(7)]
    first = api.get("/data/feed", params={"limit": 3}).json()
    assert first["items"] == [] or [i["id"] for i in first["items"]] == stored[:len(first["items"])]
    assert harness.wait_until(lambda: len(api.get("/data/feed").json()["items"]) == 7, 10)
    seen, token = [], None
    for _ in range(10):
        page = api.get("/data/feed", params={"limit": 3, **({"after": token} if token else {})}).json()
        seen += [item["id"] for item in page["items"]]
        token = page["next"]
        if not page["items"]:
            break
    assert seen == stored and token
    assert api.get("/data/feed", params={"after": token, "source": "other"}).status_code == 422


def test_make_run_serves_records_with_etags_and_pages_without(make_run):
    api = make_run
    record = api.create("make-run", {"n": 1})
    response = api.get(f"/data/{record['id']}")
    assert response.status_code == 200 and response.headers["Cache-Control"].startswith("private")
    etag = response.headers["ETag"]
    again = api.get(f"/data/{record['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert api.get("/data").headers["Cache-Control"] == "no-store"
    assert api.get("/data/feed").headers["Cache-Control"] == "no-store"
