"""What a deep page reads, and from where: PostgreSQL's buffers and the page cache (`make bench`).

Only on the FerretDB that the benchmark starts itself, whose PostgreSQL socket it knows
(against MONGODB_URI nothing here runs). FerretDB's explain has no execution statistics,
so, as the query-plan gates do (tests/integration/explain.py), the repository's own
deep-page find runs under EXPLAIN on PostgreSQL through DocumentDB's
bson_aggregation_find, here with BUFFERS and track_io_timing: shared-buffer hits against
reads (a read comes from the kernel's page cache or the disk; its I/O time tells which),
and, from the table's own counters (pg_statio), how many of those blocks were index and
how many heap. Each query runs twice in a row: the first finds what shared_buffers lacks,
the repeat finds it there. Around the queries: the sizes of the table and its indexes
against shared_buffers and RAM, how much of each is in shared_buffers (pg_buffercache)
and in the page cache (fincore), and /proc/meminfo.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from pymongo import MongoClient

from service.repository import PageQuery, RecordRepository
from tests.integration import explain

MARK = "--8<--"
# Busy backends flush their table counters at most once a second, idle ones within 10 s:
# wait that long before reading counters others may still hold.
PGSTAT_IDLE_SECONDS = 11
MEMINFO = ("MemTotal", "MemAvailable", "Cached", "Dirty")
SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "random_page_cost")
COUNTERS = ("heap_blks_read", "heap_blks_hit", "idx_blks_read", "idx_blks_hit")


class Postgres:
    """The PostgreSQL under FerretDB: one collection's table, its indexes and its counters."""

    def __init__(self, host: str, database: str, collection: str = "records"):
        self.host = host
        found = self.sql("SELECT collection_id FROM documentdb_api_catalog.collections "
                         f"WHERE database_name = '{database}' AND collection_name = '{collection}'")
        self.collection_id = int(found)
        self.table = f"documentdb_data.documents_{self.collection_id}"
        self.buffercache = self._create_buffercache()

    def sql(self, *commands: str) -> str:
        """What one session prints for `commands`, stripped."""
        return explain.psql(self.host, *commands, timeout=600).strip()

    def _create_buffercache(self) -> bool:
        """pg_buffercache (PostgreSQL's contrib) in this throwaway server, when installed."""
        try:
            self.sql("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
        except subprocess.CalledProcessError:
            return False
        return True

    def settings(self) -> dict:
        """The memory settings that decide what stays in shared_buffers."""
        names = ", ".join(f"'{name}'" for name in SETTINGS)
        return json.loads(self.sql("SELECT json_object_agg(name, current_setting(name)) "
                                   f"FROM pg_settings WHERE name IN ({names})"))

    def counters(self) -> dict:
        """The table's block counters since the server started: heap and index, hit and read."""
        return json.loads(self.sql("SET stats_fetch_consistency = none", self._counters_sql()))

    def _counters_sql(self) -> str:
        columns = ", ".join(f"'{c}', {c}" for c in COUNTERS)
        return (f"SELECT json_build_object({columns}) FROM pg_statio_all_tables "
                f"WHERE relid = '{self.table}'::regclass")

    def relations(self) -> list[dict]:
        """The table and each index: size, and bytes in shared_buffers and in the page cache."""
        in_buffers = ("(SELECT count(*) * current_setting('block_size')::int FROM pg_buffercache b "
                      "WHERE b.relfilenode = pg_relation_filenode(c.oid))" if self.buffercache else "NULL")
        rows = json.loads(self.sql(
            "SELECT json_agg(json_build_object('relation', c.relname, 'bytes', pg_relation_size(c.oid), "
            f"'shared_buffers_bytes', {in_buffers}, 'file', current_setting('data_directory') || '/' "
            "|| pg_relation_filepath(c.oid)) ORDER BY c.relkind DESC, c.relname) FROM pg_class c "
            f"WHERE c.oid = '{self.table}'::regclass OR c.oid IN "
            f"(SELECT indexrelid FROM pg_index WHERE indrelid = '{self.table}'::regclass)"))
        names = self.index_names()
        for row in rows:
            row["index"] = names.get(row["relation"])
            row["page_cache_bytes"] = page_cache_bytes(Path(row.pop("file")))
        return rows

    def index_names(self) -> dict:
        """PostgreSQL's name of each index of the collection -> the name the API knows it by."""
        found = self.sql("SELECT json_object_agg('documents_rum_index_' || index_id, "
                         "(index_spec).index_name) FROM documentdb_api_catalog.collection_indexes "
                         f"WHERE collection_id = {self.collection_id}")
        return {**json.loads(found or "{}"), f"collection_pk_{self.collection_id}": "_id_"}

    def explain_twice(self, commands: list[dict]) -> list[dict]:
        """Per find command: EXPLAIN (ANALYZE, BUFFERS) of a first run and of the same query again.

        One session for all of them, so that its own counters are flushed (and read)
        between two queries, and nothing else of ours touches the table meanwhile.
        """
        script = ["SET track_io_timing = on", "SET stats_fetch_consistency = none", *self._counting()]
        for command in commands:
            for _ in ("first", "repeat"):
                script += [explain.find_sql(command, "ANALYZE, BUFFERS"), *self._counting()]
        parts = self.sql(*script).split(MARK)
        counters = [json.loads(part) for part in parts[1::2]]
        plans = [json.loads(part)[0] for part in parts[2:-1:2]]
        runs = [{**figures(plan), **blocks(before, after)}
                for plan, before, after in zip(plans, counters, counters[1:])]
        return [{"first": first, "repeat": repeat} for first, repeat in zip(runs[::2], runs[1::2])]

    def _counting(self) -> list[str]:
        """Flush this session's counters, then print the table's between two marks."""
        return ["SELECT pg_stat_force_next_flush()", f"\\echo {MARK}", self._counters_sql(), f"\\echo {MARK}"]


def page_cache_bytes(file: Path) -> int:
    """Bytes of a relation in the kernel's page cache: every 1 GiB segment file of it, by fincore."""
    segments = [file, *sorted(file.parent.glob(f"{file.name}.[0-9]*"))]
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                          *map(str, segments)], capture_output=True, text=True, check=True)
    return sum(int(line) for line in out.stdout.split())


def meminfo() -> dict:
    """The machine's memory as the kernel sees it, in KiB."""
    lines = (line.split() for line in Path("/proc/meminfo").read_text().splitlines())
    return {fields[0].rstrip(":"): int(fields[1]) for fields in lines if fields[0].rstrip(":") in MEMINFO}


def figures(explained: dict) -> dict:
    """Time, shared-buffer hits and reads, I/O time and rows read, from one EXPLAIN."""
    plan = explained["Plan"]
    scans = [node for node in explain.plan_nodes(plan) if "Scan" in node["Node Type"]]
    return {"ms": explained["Execution Time"], "shared_hit": plan["Shared Hit Blocks"],
            "shared_read": plan["Shared Read Blocks"], "io_read_ms": plan.get("I/O Read Time"),
            "temp_blocks": plan["Temp Read Blocks"] + plan["Temp Written Blocks"],
            "rows_read": sum(explain.rows_read(node) for node in scans),
            "scans": [node.get("Index Name", node["Node Type"]) for node in scans]}


def blocks(before: dict, after: dict) -> dict:
    """Heap and index blocks hit and read between two readings of the table's counters."""
    return {name: after[name] - before[name] for name in COUNTERS}


def deep_page_commands(uri: str, database: str, limit: int, sentinel, after_ids: list) -> list[dict]:
    """The repository's deep-page find for each cursor in `after_ids`, exactly as it sends it.

    The repository runs once, for a cursor below the oldest record (an empty page), so
    that no sampled page is read before it is explained; its command is then given each
    cursor in place of that one.
    """
    recorder = explain.FindRecorder()
    with MongoClient(uri, event_listeners=[recorder], tz_aware=True) as client:
        db = client[database]
        repository = RecordRepository(db["records"], db["records.idempotency"], 86400)
        list(repository.page(PageQuery(limit=limit, after=sentinel)))
    return [_replaced(recorder.command, sentinel, after) for after in after_ids]


def _replaced(value, old, new):
    """`value` with every occurrence of `old` in it, at any depth, replaced by `new`."""
    if isinstance(value, dict):
        return {key: _replaced(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, old, new) for item in value]
    return new if value == old else value


def summary(samples: list[dict]) -> dict:
    """Per run (first, repeat): median and max time, and blocks summed over the samples."""
    summed = ("shared_hit", "shared_read", "io_read_ms", *COUNTERS)
    return {run: {"median_ms": round(statistics.median(s[run]["ms"] for s in samples), 3),
                  "max_ms": round(max(s[run]["ms"] for s in samples), 3),
                  **{name: round(sum(s[run][name] or 0 for s in samples), 3) for name in summed}}
            for run in ("first", "repeat")}


def measure(postgres: Postgres, commands: list[dict], depths: list[int]) -> dict:
    """The deep page's reads at `depths`, and the memory state before and after."""
    time.sleep(PGSTAT_IDLE_SECONDS)
    before = {"meminfo_kib": meminfo(), "relations": postgres.relations()}
    samples = [{"depth": depth, **runs} for depth, runs in zip(depths, postgres.explain_twice(commands))]
    after = {"meminfo_kib": meminfo(), "relations": postgres.relations()}
    return {"settings": postgres.settings(), "before": before, "after": after,
            "summary": summary(samples), "samples": samples}
