"""A benchmark result says how to rerun it, and its gate holds at every volume."""
from __future__ import annotations

import json

from bench import buffers, check, machine, preload, run
from service import cursor
from service.repository import PageQuery


def test_the_command_carries_every_override_that_changes_a_measurement():
    environ = {"BENCH_RUN_SECONDS": "20", "WEB_CONCURRENCY": "3", "SOAK_VOLUME": "1000000",
               "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 4", "PATH": "/usr/bin"}
    assert machine.command("bench", environ) == (
        "BENCH_RUN_SECONDS=20 GUNICORN_CMD_ARGS='--worker-class gthread --threads 4' "
        "SOAK_VOLUME=1000000 WEB_CONCURRENCY=3 make bench")


def test_the_command_leaves_out_output_paths_the_cursor_key_and_makes_default_store():
    environ = {"BENCH_RESULTS": "/elsewhere", "BENCH_OUT": "/raw", "CURSOR_SECRET": "k" * 64,
               "MONGODB_URI": "memory://"}
    assert machine.command("soak", environ) == "make soak"


def test_a_servers_credentials_never_reach_the_result_file():
    environ = {"MONGODB_URI": "mongodb://user:secret@db.example:27017/?tls=true"}
    masked = "MONGODB_URI='mongodb://...@db.example:27017/?tls=true' make bench"
    assert machine.command("bench", environ) == masked


def _result(*p99_by_volume: tuple[int, float]) -> dict:
    return {"levels": [{"volume": volume, "excluded": {},
                        "ops": {"post": {"p50_ms": 1.0, "p99_ms": p99, "failed": 0}}}
                       for volume, p99 in p99_by_volume]}


def test_the_gate_fails_a_ratio_over_the_limit_at_an_intermediate_volume():
    found = check.problems(_result((10_000, 10.0), (100_000, 12.0), (1_000_000, 10.5)), 1.10, 500)
    assert found == ["post: p99 at 100,000 / p99 at 10,000 records = 1.2 > 1.1"]


def test_the_gate_passes_flat_latency():
    assert check.problems(_result((10_000, 10.0), (10_000_000, 11.0)), 1.10, 500) == []


def test_the_deep_page_cursors_a_benchmark_sends_are_ones_the_service_accepts(tmp_path):
    bench = run.Bench(run.Plan(out=tmp_path), None, None, "s" * 32, url="http://127.0.0.1:9")
    bench.write_samples(1_000)
    samples = json.loads((tmp_path / "samples-1000.json").read_text())
    scope = PageQuery(limit=run.PAGE_LIMIT).scope()
    after = cursor.decode(samples["cursors"][0], scope, cursor.make_keys("s" * 32))
    assert preload.record_id(0) < after <= preload.record_id(999)


def test_the_command_names_another_checkout_by_its_commit_not_by_its_path(tmp_path):
    environ = {"BENCH_TAX_BASELINE": f"{machine.REPO},{tmp_path}"}
    head = machine.commit()[:12]
    assert machine.command("bench-tax", environ) == (
        f"BENCH_TAX_BASELINE='<checkout of {head}>,<checkout of unknown>' make bench-tax")


def test_a_run_of_some_operations_keeps_the_headline_result():
    assert run.result_name(list(run.ALL_OPS)) == "volumes.json"
    assert run.result_name(["deep_page", "walk"]) == "volumes-deep_page-walk.json"


def test_the_explained_find_is_the_repositorys_with_only_the_cursor_changed():
    command = {"find": "records", "filter": {"_id": {"$lt": 1}, "source": 1}, "sort": {"_id": -1}}
    expected = {"find": "records", "filter": {"_id": {"$lt": 7}, "source": 7}, "sort": {"_id": -1}}
    assert buffers._replaced(command, 1, 7) == expected


def test_an_explain_gives_buffers_and_rows_read_of_its_scans():
    scan = {"Node Type": "Index Scan", "Index Name": "_id_-1", "Actual Rows": 101, "Actual Loops": 1}
    plan = {"Node Type": "Limit", "Plans": [scan], "Shared Hit Blocks": 5, "Shared Read Blocks": 16,
            "I/O Read Time": 0.5, "Temp Read Blocks": 0, "Temp Written Blocks": 0}
    assert buffers.figures({"Plan": plan, "Execution Time": 1.5}) == {
        "ms": 1.5, "shared_hit": 5, "shared_read": 16, "io_read_ms": 0.5, "temp_blocks": 0,
        "rows_read": 101, "scans": ["_id_-1"]}
    before = dict.fromkeys(buffers.COUNTERS, 10)
    assert buffers.blocks(before, dict.fromkeys(buffers.COUNTERS, 12)) == dict.fromkeys(buffers.COUNTERS, 2)
