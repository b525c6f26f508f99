"""explain() of the repository's own queries, for the query-plan gates.

test_query_plans runs them on one server (MongoDB, or FerretDB 2 on PostgreSQL) and
test_sharding through mongos. On a sharded cluster mongos merges one plan per shard, and a
merged page reads up to its limit from every shard it targets: the bounds then hold per
shard, not in total.

FerretDB's explain returns PostgreSQL's plan without execution statistics, so on FerretDB
the gates run the same find command under `EXPLAIN (ANALYZE)` on PostgreSQL itself, through
DocumentDB's `bson_aggregation_find` (the function FerretDB's own queries go through), over
the server's socket (FERRETDB_PG_HOST, set by scripts/integration.sh). On the sharded
engine (DocumentDB distributed on Citus) that server is the coordinator, and the plan of
each shard a query reached is one task of Citus's distributed plan (`shard_plans`).
"""
from __future__ import annotations

import json
import subprocess

from bson import json_util
from pymongo import monitoring

INDEX_STAGES = {"IXSCAN", "IDHACK", "EXPRESS_IXSCAN", "EXPRESS_CLUSTERED_IXSCAN"}


class RecordingCollection:
    """A collection that keeps the last cursor it handed out, so its plan can be explained."""

    def __init__(self, collection):
        self.collection = collection
        self.cursor = None

    def __getattr__(self, name):
        return getattr(self.collection, name)

    def find(self, *args, **kwargs):
        self.cursor = self.collection.find(*args, **kwargs)
        return self.cursor

    def find_one(self, filter=None, *args, **kwargs):
        """pymongo's find_one, going through find() so that the cursor is kept."""
        for document in self.find(filter, *args, **kwargs).limit(-1):
            return document
        return None


def stages(plan) -> list[str]:
    """Every stage name in a plan tree (classic, SBE queryPlan or per shard)."""
    found = []
    if isinstance(plan, dict):
        if isinstance(plan.get("stage"), str):
            found.append(plan["stage"])
        for value in plan.values():
            found += stages(value)
    elif isinstance(plan, list):
        for item in plan:
            found += stages(item)
    return found


def explain(records: RecordingCollection) -> dict:
    """explain() of the last query the repository ran (a clone of its cursor).

    pymongo explains with the server's default verbosity, allPlansExecution, which
    includes the winning plan's executionStats.
    """
    return records.cursor.explain()


def per_shard(explained: dict) -> dict[str, dict]:
    """Execution statistics by shard name; one entry, "", on an unsharded server."""
    stats = explained["executionStats"]
    shards = stats["executionStages"].get("shards")
    if shards is None:
        return {"": stats}
    return {shard["shardName"]: shard for shard in shards}


def assert_bounded(explained: dict, max_rows: int) -> None:
    """An index walk, no in-memory sort, and at most `max_rows` keys and documents
    examined, on each shard the query reached."""
    plan_stages = stages(explained["queryPlanner"]["winningPlan"])
    assert INDEX_STAGES & set(plan_stages), plan_stages
    assert "COLLSCAN" not in plan_stages, plan_stages
    assert not {"SORT", "SORT_KEY_GENERATOR"} & set(plan_stages), plan_stages
    for shard, stats in per_shard(explained).items():
        assert stats["totalKeysExamined"] <= max_rows, (shard, stats["totalKeysExamined"])
        assert stats["totalDocsExamined"] <= max_rows, (shard, stats["totalDocsExamined"])


class FindRecorder(monitoring.CommandListener):
    """Keeps the last `find` command a client sent: exactly what the repository asked."""

    def __init__(self):
        self.command: dict | None = None

    def started(self, event):
        if event.command_name == "find":
            self.command = dict(event.command)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


# Fields a driver adds to a command that are not part of the query itself.
_DRIVER_FIELDS = {"$db", "lsid", "$clusterTime", "$readPreference", "txnNumber", "singleBatch",
                  "batchSize", "maxTimeMS", "readConcern", "comment"}


def find_sql(command: dict, options: str = "ANALYZE") -> str:
    """EXPLAIN (`options`, FORMAT JSON) of a find command, as FerretDB 2 would run it."""
    database = command["$db"]
    spec = {k: v for k, v in command.items() if k not in _DRIVER_FIELDS}
    literal = json_util.dumps(spec, json_options=json_util.CANONICAL_JSON_OPTIONS).replace("'", "''")
    return (f"EXPLAIN ({options}, FORMAT JSON) SELECT document FROM "
            f"documentdb_api_catalog.bson_aggregation_find('{database}', '{literal}')")


def psql(pg_host: str, *commands: str, timeout: float = 60) -> str:
    """What one psql session prints for `commands` (each SQL or one backslash command), unaligned."""
    arguments = [argument for command in commands for argument in ("-c", command)]
    out = subprocess.run(["psql", "-h", pg_host, "-U", "postgres", "-d", "postgres", "-XAtq", *arguments],
                         capture_output=True, text=True, check=True, timeout=timeout)
    return out.stdout


def postgres_plan(pg_host: str, command: dict) -> dict:
    """PostgreSQL's EXPLAIN (ANALYZE) of a find command, as FerretDB 2 would run it."""
    # Citus shows one task's plan unless told to show all; elsewhere this is an unused placeholder.
    out = psql(pg_host, "SET citus.explain_all_tasks = on", find_sql(command))
    return json.loads(out)[0]["Plan"]


def citus_job(plan: dict) -> dict | None:
    """The job of a Citus distributed plan (its tasks, one per shard reached), if there is one."""
    for node in plan_nodes(plan):
        if "Distributed Query" in node:
            return node["Distributed Query"]["Job"]
    return None


def shard_plans(plan: dict) -> list[dict]:
    """The plan each shard ran: every task of a Citus distributed plan, else the plan itself."""
    job = citus_job(plan)
    if job is None:
        return [plan]
    assert job["Tasks Shown"] == "All", job["Tasks Shown"]
    # Each task's remote plan is a list of EXPLAIN outputs, each a list of statements.
    return [statement["Plan"] for task in job["Tasks"]
            for output in task["Remote Plan"] for statement in output]


def plan_nodes(node: dict) -> list[dict]:
    """A PostgreSQL plan node and every node below it, depth first."""
    return [node] + [n for child in node.get("Plans", []) for n in plan_nodes(child)]


def rows_read(node: dict) -> float:
    """Index entries a scan node visited: those it returned and those it threw away."""
    visited = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
               + node.get("Rows Removed by Index Recheck", 0))
    return visited * node.get("Actual Loops", 1)


def assert_postgres_bounded(plan: dict, index: str, max_rows: int, limited: bool = True) -> None:
    """A Limit over an Index Scan on `index`, no Sort node, at most `max_rows` rows read."""
    nodes = plan_nodes(plan)
    types = [node["Node Type"] for node in nodes]
    assert not [t for t in types if "Sort" in t], types
    assert "Seq Scan" not in types, types
    scans = [node for node in nodes if "Scan" in node["Node Type"]]
    assert [node["Node Type"] for node in scans] == ["Index Scan"], types
    assert scans[0]["Index Name"] == index, scans[0]["Index Name"]
    if limited:
        assert types[0] == "Limit", types
    read = sum(rows_read(node) for node in scans)
    assert read <= max_rows, (read, max_rows)
