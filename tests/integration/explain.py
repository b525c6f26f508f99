"""explain() of the repository's own queries, for the query-plan gates.

test_query_plans runs them on one server and test_sharding through mongos. On a
sharded cluster mongos merges one plan per shard, and a merged page reads up to its
limit from every shard it targets: the bounds then hold per shard, not in total.
"""
from __future__ import annotations

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


def assert_bounded(explained: dict, limit: int) -> None:
    """An index walk, no in-memory sort, and at most limit + 1 keys and documents
    examined, on each shard the query reached."""
    plan_stages = stages(explained["queryPlanner"]["winningPlan"])
    assert INDEX_STAGES & set(plan_stages), plan_stages
    assert "COLLSCAN" not in plan_stages, plan_stages
    assert not {"SORT", "SORT_KEY_GENERATOR"} & set(plan_stages), plan_stages
    for shard, stats in per_shard(explained).items():
        assert stats["totalKeysExamined"] <= limit + 1, (shard, stats["totalKeysExamined"])
        assert stats["totalDocsExamined"] <= limit + 1, (shard, stats["totalDocsExamined"])
