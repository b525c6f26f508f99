"""Ids order: strict within a process, by clock across processes (docs/architecture.md, Ordering)."""
from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta

from bson import ObjectId

from service.ids import made_at, new_id


def make_ids(barrier, results, count: int) -> None:
    """Put (clock before, id, clock after) for `count` ids, made once both processes are ready."""
    barrier.wait(60)  # spawning and importing take each process a different time
    made = []
    for _ in range(count):
        before = time.time_ns()
        record_id = new_id()
        made.append((before, record_id.binary, time.time_ns()))
    results.put(made)


def test_ids_of_one_process_increase_strictly():
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ids_of_two_processes_sort_by_the_time_they_were_made():
    """Two processes on one clock: an id made wholly after another sorts after it."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=make_ids, args=(barrier, results, 20_000)) for _ in range(2)]
    for process in processes:
        process.start()
    first, second = results.get(timeout=120), results.get(timeout=120)
    for process in processes:
        process.join(30)
    assert {i[4:9] for _, i, _ in first}.isdisjoint({i[4:9] for _, i, _ in second})
    # Ids hold microseconds: within one microsecond two processes sort either way.
    events = sorted([(before // 1000, ObjectId(i), after // 1000) for before, i, after in first + second],
                    key=lambda event: event[1])
    # In id order, no id may have been made wholly (in an earlier microsecond) after one
    # that sorts ahead of it.
    latest_start = 0
    checked = 0
    for before, _, after in events:
        assert after >= latest_start, "an id sorts after one that was made later"
        latest_start = max(latest_start, before)
        checked += 1
    assert checked == 40_000
    overlap = min(first[-1][2], second[-1][2]) - max(first[0][0], second[0][0])
    assert overlap > 0, "the processes did not run at the same time: nothing was compared"


def test_made_at_is_the_ids_time_to_the_millisecond():
    before = time.time_ns() // 1_000_000
    record_id = new_id()
    after = time.time_ns() // 1_000_000
    at = made_at(record_id)
    assert before <= int(at.timestamp() * 1000) <= after
    assert at.microsecond % 1000 == 0
    assert at - record_id.generation_time < timedelta(seconds=1)
