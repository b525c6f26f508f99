"""Turn the JSON results into bench/results/RESULTS.md and latency.png (needs matplotlib).

Run with the bench virtualenv: `make bench-report` (also the last step of `make bench`).
Only files that exist are reported, so each target can refresh its own part.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot loads)

from bench import check  # noqa: E402

RESULTS = Path(os.environ.get("BENCH_RESULTS", "bench/results"))
OPS = ("post", "by_id", "first_page", "deep_page", "walk")
LABELS = {"post": "POST /data", "by_id": "GET /data/<id>", "first_page": "GET /data (first page)",
          "deep_page": "GET /data?cursor (deep page)", "walk": "GET /data?cursor (walk of next_cursor)"}
MIB = 2**20


def load(name: str) -> dict | None:
    """A result file, or None when that benchmark has not been run."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def machine_line(result: dict, name: str) -> str:
    """The machine and the server, then the command and the commit."""
    m = result["machine"]
    server = f", server {result['server']}" if "server" in result else ""
    return (f"Measured {m['measured_at']} on {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
            f"Linux {m['kernel']}, Python {m['python']}" + (f", k6 {m['k6']}" if m.get("k6") else "")
            + f"{server}; load generator on the same machine. " + provenance_line(result, name))


def _committed_in(name: str) -> str:
    """The commit that last wrote a result file, for files older than the `commit` field."""
    log = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(RESULTS / name)],
                         capture_output=True, text=True)
    return log.stdout.strip() or "unknown"


def provenance_line(result: dict, name: str) -> str:
    """The exact command, and the commit measured (or, when not recorded, the one that committed it)."""
    commit = result.get("commit")
    measured = (f"commit `{commit}`" if commit else
                f"commit not recorded (the file was committed in `{_committed_in(name)}`, "
                "so the run measured the code before that commit)")
    return f"Command: `{result['command']}`; {measured}."


def _cell(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:g}{unit}"


def volume_table(result: dict) -> list[str]:
    """p50/p99/throughput per operation and volume; operations not loaded say why."""
    lines = ["| operation | volume | p50 ms | p99 ms | req/s | failed | dropped |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for level in result["levels"]:
        for op in OPS:
            figures = level["ops"].get(op)
            if figures:
                lines.append(f"| {LABELS[op]} | {level['volume']:,} | {_cell(figures['p50_ms'])} | "
                             f"{_cell(figures['p99_ms'])} | {_cell(figures['throughput_rps'])} | "
                             f"{figures['failed']} | {figures['dropped']} |")
            elif op in level["excluded"]:
                why = f"not loaded from here on: {level['excluded'][op]}"
                lines.append(f"| {LABELS[op]} | {level['volume']:,} | {why} | | | | |")
    return lines


def probe_table(result: dict) -> list[str]:
    """Each operation alone (one request at a time), median ms per volume."""
    volumes = [level["volume"] for level in result["levels"]]
    lines = ["| operation alone | " + " | ".join(f"{v:,}" for v in volumes) + " |",
             "|---|" + "---:|" * len(volumes)]
    for op in [op for op in OPS if any(op in level["probe_p50_ms"] for level in result["levels"])]:
        cells = [_cell(level["probe_p50_ms"].get(op), " ms") for level in result["levels"]]
        lines.append(f"| {LABELS[op]} | " + " | ".join(cells) + " |")
    return lines


def contrast_table(result: dict) -> list[str]:
    """Keyset page (the API's query) against skip at the same depths."""
    lines = ["| volume | depths | keyset median ms | skip median ms |", "|---:|---|---:|---:|"]
    for level in result["levels"]:
        c = level.get("contrast")
        if c:
            lines.append(f"| {level['volume']:,} | {', '.join(map(str, c['depths']))} | "
                         f"{_cell(c['keyset_median_ms'])} | {_cell(c['skip_median_ms'])} |")
    return lines


def _mib(value) -> str:
    return "–" if value is None else f"{value / MIB:,.0f} MiB"


def _share(read: float, hit: float) -> str:
    """Blocks read (not found in shared_buffers) over all blocks touched."""
    return "–" if not read + hit else f"{read / (read + hit):.0%}"


def memory_table(result: dict) -> list[str]:
    """Per volume: the table and its indexes, their size, and how much was in memory before the queries."""
    lines = ["| volume | relation | size | in shared_buffers | in page cache |", "|---:|---|---:|---:|---:|"]
    for level in result["levels"]:
        reads = level.get("deep_reads")
        for row in reads["before"]["relations"] if reads else []:
            name = f"index `{row['index']}`" if row["index"] else "table (heap)"
            lines.append(f"| {level['volume']:,} | {name} | {_mib(row['bytes'])} | "
                         f"{_mib(row['shared_buffers_bytes'])} | {_mib(row['page_cache_bytes'])} |")
    return lines


def deep_reads_table(result: dict) -> list[str]:
    """Per volume: the deep page under EXPLAIN (ANALYZE, BUFFERS), first run and repeat."""
    lines = ["| volume | run | median ms | max ms | blocks hit | blocks read | read share | heap read / hit "
             "| index read / hit | I/O read ms |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for level in result["levels"]:
        reads = level.get("deep_reads")
        for run, s in (reads["summary"].items() if reads else ()):
            lines.append(f"| {level['volume']:,} | {run} | {s['median_ms']:g} | {s['max_ms']:g} | "
                         f"{s['shared_hit']:,} | {s['shared_read']:,} | "
                         f"{_share(s['shared_read'], s['shared_hit'])} | "
                         f"{s['heap_blks_read']:,} / {s['heap_blks_hit']:,} | "
                         f"{s['idx_blks_read']:,} / {s['idx_blks_hit']:,} | {s['io_read_ms']:g} |")
    return lines


def load_blocks_table(result: dict) -> list[str]:
    """Per volume and operation: the table's blocks hit and read while the operation was under load."""
    lines = ["| volume | operation | heap read / hit | heap read share | index read / hit "
             "| index read share |",
             "|---:|---|---:|---:|---:|---:|"]
    for level in result["levels"]:
        for op, figures in level["ops"].items():
            b = figures.get("blocks")
            if b:
                lines.append(f"| {level['volume']:,} | {LABELS[op]} | {b['heap_blks_read']:,} / "
                             f"{b['heap_blks_hit']:,} | {_share(b['heap_blks_read'], b['heap_blks_hit'])} | "
                             f"{b['idx_blks_read']:,} / {b['idx_blks_hit']:,} | "
                             f"{_share(b['idx_blks_read'], b['idx_blks_hit'])} |")
    return lines


def deep_reads_section(result: dict) -> list[str]:
    """Where a deep page's blocks come from (bench/buffers.py), when the run could see PostgreSQL."""
    measured = [level for level in result["levels"] if level.get("deep_reads")]
    if not measured:
        return []
    first = measured[0]["deep_reads"]
    samples = len(first["samples"])
    settings = ", ".join(f"{name} {value}" for name, value in first["settings"].items())
    ram = first["before"]["meminfo_kib"]["MemTotal"] * 1024
    return [
        "What a deep page reads (`bench/buffers.py`): the repository's deep-page find at "
        f"{samples} uniformly drawn depths under `EXPLAIN (ANALYZE, BUFFERS)` with `track_io_timing`, "
        "through DocumentDB's `bson_aggregation_find`, each run twice in a row (first, repeat); heap and "
        f"index blocks from the table's counters. PostgreSQL: {settings}; RAM {_mib(ram)}.", "",
        *deep_reads_table(result), "", "Sizes and what was in memory before those queries:", "",
        *memory_table(result), "",
        "The table's blocks while each operation was under load (warm-up and runs):", "",
        *load_blocks_table(result), ""]


def gate_lines(result: dict, name: str) -> list[str]:
    """p99 at each volume over p99 at the smallest, and the verdict of bench/check.py."""
    low = result["levels"][0]["volume"]
    lines = [f"- p99 at {volume:,} records over p99 at {low:,}: "
             + ", ".join(f"{LABELS[op]} **{r}**" for op, r in by_op.items())
             for volume, by_op in check.ratios(result).items()]
    found = check.problems(result, check.MAX_RATIO, check.MAX_P99_MS)
    verdict = "failed: " + "; ".join(found) if found else "passed"
    gate = f"python3 bench/check.py bench/results/{name} --max-ratio {check.MAX_RATIO:g} " \
           f"--max-p99-ms {check.MAX_P99_MS:g}"
    return [*lines, "", f"Gate (`{gate}`): **{verdict}**."]


def bulk_lines(bulk: dict | None) -> list[str]:
    """Bulk against single ingest; a run stopped before the last volume ended has none."""
    if not bulk:
        return ["The run stopped before its last volume ended: no bulk ingest.", ""]
    return [f"Bulk ingest: POST /data/batch of {bulk['batch_size']} records: "
            f"**{bulk['batch_records_per_second']:,} records/s** vs {bulk['single_records_per_second']:,} "
            f"records/s with single POSTs (**{bulk['speedup']}x**), both closed-loop.", ""]


def volumes_section(result: dict, name: str = "volumes.json") -> list[str]:
    """Everything `make bench` measured; a run of some operations only is titled with them."""
    bulk, svc, plan = result.get("bulk"), result["service"], result["plan"]
    rates = result["levels"][0]["rates"]
    capacity = result["capacity_alone_per_second"]
    chosen = ", ".join(f"{op} {rates[op]}/s (capacity alone {capacity.get(op, '–')}/s)" for op in rates)
    preload = ", ".join(f"{lv['preload']['added']:,} in {lv['preload']['seconds']} s"
                        for lv in result["levels"])
    return [
        "## Latency vs volume (`make bench`)" if name == "volumes.json" else
        f"## Latency vs volume, {', '.join(plan['ops'])} only (`{name}`)", "", machine_line(result, name), "",
        f"Service: gunicorn {svc['worker_class']}, {svc['web_concurrency']} workers of "
        f"{svc['worker_connections']} connections, "
        f"pool {svc['mongodb_max_pool_size']}, write concern {svc['mongodb_write_concern']}, "
        f"pages of {svc['page_limit']}, records of ~{svc['record_bytes']} bytes of JSON.", "",
        "Each operation alone under open-loop load (k6 constant-arrival-rate) at half its closed-loop "
        f"capacity ({plan['capacity_vus']} VUs) measured at {plan['volumes'][0]:,} records, the same rate at "
        f"every volume: {chosen}. Warm-up {plan['warmup_seconds']} s, then {plan['runs']} runs of "
        f"{plan['run_seconds']} s; medians of the runs. Preload (insert_many): {preload}. "
        f"Whole run: {result['wall_seconds']} s.", "",
        *volume_table(result), "",
        *gate_lines(result, name), "", *deep_reads_section(result),
        "Each operation alone, one request at a time (median; an operation slower than "
        f"{plan['probe_limit_ms']:g} ms alone is not put under load at that volume or above):", "",
        *probe_table(result), "", "Keyset page vs `skip` at the same depths (pymongo, outside the API):", "",
        *contrast_table(result), "",
        *bulk_lines(bulk),
        *(["![p50 and p99 per operation vs volume, and throughput](latency.png)", ""]
          if name == "volumes.json" else []),
    ]


def _engine_cells(level: dict, op: str) -> list[str]:
    """One engine's p50 / p99 and achieved rate for an operation at a volume, or why it was not loaded."""
    figures = level["ops"].get(op)
    if figures:
        return [f"{_cell(figures['p50_ms'])} / {_cell(figures['p99_ms'])}", _cell(figures["throughput_rps"])]
    return [f"not loaded: {level['excluded'].get(op, 'not measured')}", ""]


def _engine_costs(engine: dict, volume_index: int, op: str) -> str:
    """An operation alone, its capacity, and its failed and dropped requests on one engine."""
    level = engine["levels"][volume_index]
    figures = level["ops"].get(op, {"failed": 0, "dropped": 0})
    capacity = engine["capacity_alone_per_second"].get(op)
    alone = _cell(level["probe_p50_ms"].get(op))
    return f"{alone} | {_cell(capacity)} | {figures['failed']} / {figures['dropped']}"


def engine_line(name: str, engine: dict) -> str:
    """How one engine was started and loaded, and where its records went."""
    preload = ", ".join(f"{lv['preload']['added']:,} records in {lv['preload']['seconds']} s"
                        for lv in engine["levels"])
    shards = engine.get("records_per_shard")
    placed = "; records per shard: " + ", ".join(
        f"{node} {' + '.join(f'{n:,}' for n in rows)}" for node, rows in shards.items()) if shards else ""
    return (f"- **{name}**: {engine['server']}; installed (already built) and started in "
            f"{engine['install_and_start_seconds']} s; load average "
            f"{', '.join(map(str, engine['load_average_at_start']))} at its start; preload (insert_many) "
            f"{preload}; whole plan {engine['wall_seconds']} s{placed}.")


def engines_section(result: dict) -> list[str]:
    """The same plan on each engine (`BENCH_ENGINES`), side by side."""
    engines = result["engines"]
    first = next(iter(engines.values()))
    lines = ["## Single node vs sharded (`make bench`, `BENCH_ENGINES`)", "",
             machine_line(result, "sharded.json"), "",
             "The plan of `make bench` on each engine in turn, each at half of its own capacity measured"
             " at the first volume:", "", *(engine_line(n, e) for n, e in engines.items()), "",
             "| operation | volume | " + " | ".join(f"{n} p50 / p99 ms | {n} req/s" for n in engines) + " |",
             "|---|---:|" + "---:|---:|" * len(engines)]
    for index, level in enumerate(first["levels"]):
        for op in OPS:
            cells = [c for e in engines.values() for c in _engine_cells(e["levels"][index], op)]
            lines.append(f"| {LABELS[op]} | {level['volume']:,} | " + " | ".join(cells) + " |")
    lines += ["", "| operation | volume | engine | alone ms (median) | capacity alone req/s "
              "| failed / dropped |", "|---|---:|---|---:|---:|---:|"]
    for index, level in enumerate(first["levels"]):
        lines += [f"| {LABELS[op]} | {level['volume']:,} | {name} | {_engine_costs(e, index, op)} |"
                  for op in OPS for name, e in engines.items()]
    bulk = "; ".join(f"{n} {e['bulk']['batch_records_per_second']:,} vs "
                     f"{e['bulk']['single_records_per_second']:,}" for n, e in engines.items())
    return [*lines, "", f"Bulk ingest, records/s through POST /data/batch vs single POSTs: {bulk}.", ""]


def overhead_section(result: dict) -> list[str]:
    """CPU per request of the service alone."""
    providers = list(result["providers"])
    lines = ["## Service overhead (`make bench-overhead`)", "", machine_line(result, "overhead.json"), "",
             "CPU microseconds per request through the WSGI app with an in-process stub store "
             "(median of blocks):", "",
             "| request | " + " | ".join(f"{p} JSON" for p in providers) + " |",
             "|---|" + "---:|" * len(providers)]
    for op in result["providers"][providers[0]]:
        cells = [f"{result['providers'][p][op]['cpu_us']:,} µs" for p in providers]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def soak_section(result: dict) -> list[str]:
    """p99 per minute and worker memory over the soak."""
    lines = ["## Soak (`make soak`)", "", machine_line(result, "soak.json"), "",
             f"{result['seconds']} s at {result['rate_per_op']} requests/s per operation on "
             f"{result['volume']:,} preloaded records ({result['records_at_end']:,} at the end), after "
             f"{result['warmup_seconds']} s of warm-up.", "",
             "| operation | p99 per minute (ms) | last / first minute |", "|---|---|---:|"]
    for op, series in result["p99_ms_per_minute"].items():
        lines.append(f"| {LABELS.get(op, op)} | {', '.join(map(str, series))} | "
                     f"{_cell(result['p99_last_over_first_minute'].get(op))} |")
    return [*lines, "", f"Worker RSS: {result['rss_kib_after_warmup']:,} KiB after warm-up, "
            f"{result['rss_kib_end']:,} KiB at the end ({result['rss_growth_percent']:+g} %).", ""]


def tuning_section(result: dict) -> list[str]:
    """Capacity (median of the rounds) and open-loop latency per server configuration."""
    rounds = result.get("rounds", 1)
    default = result["configs"][0]["capacity_rps"]
    lines = ["## Tuning (`make bench-tune`)", "", machine_line(result, "tuning.json"), "",
             f"{result['volume']:,} records; capacity: closed loop, {result['vus']} VUs, even mix of "
             f"{', '.join(result['ops'])}, median of {rounds} interleaved rounds; latency: open loop at "
             f"{result['rate_per_op']} requests/s per operation.", "",
             "| configuration | capacity req/s | vs default | rounds | "
             + " | ".join(f"{op} p99 ms" for op in result["ops"]) + " |",
             "|---|---:|---:|---|" + "---:|" * len(result["ops"])]
    for config in result["configs"]:
        p99 = [_cell(config["open"].get(op, {}).get("p99_ms")) for op in result["ops"]]
        each = ", ".join(map(str, config.get("capacity_rps_rounds", [config["capacity_rps"]])))
        change = (config["capacity_rps"] / default - 1) * 100
        name = config["name"] + (f" at `{config['source'][:7]}`" if config.get("source") else "")
        lines.append(f"| {name} | {config['capacity_rps']} | {change:+.0f} % | {each} | "
                     + " | ".join(p99) + " |")
    return [*lines, ""]


def edge_section(result: dict) -> list[str]:
    """The same reads straight to gunicorn and through nginx, interleaved."""
    lines = ["## The nginx edge (`make bench-edge`)", "", machine_line(result, "edge.json"), "",
             "Sequential keep-alive GETs, each sent straight to gunicorn and then through nginx "
             "(`deploy/nginx/nginx.conf`), one after the other; the first tenth dropped as warm-up.", "",
             "| read | requests | direct p50 / p99 ms | through nginx p50 / p99 ms "
             "| edge cost p50 / p99 ms |",
             "|---|---:|---:|---:|---:|"]
    for read, row in result["reads"].items():
        lines.append(f"| {read} | {row['requests']:,} | "
                     f"{row['direct_p50_ms']:g} / {row['direct_p99_ms']:g} | "
                     f"{row['edge_p50_ms']:g} / {row['edge_p99_ms']:g} | "
                     f"{row['cost_p50_ms']:+g} / {row['cost_p99_ms']:+g} |")
    return [*lines, ""]


def tax_section(result: dict) -> list[str]:
    """The same reads through the API and through pymongo, interleaved; where the workers spend it."""
    ways = ["http", *result["baselines"]]
    names = {way: "API" if way == "http" else f"API at `{way[:7]}`" for way in ways}
    lines = ["## The service tax (`make bench-tax`)", "", machine_line(result, "tax.json"), "",
             f"{result['volume']:,} records; sequential keep-alive requests, each read sent through every "
             "way in turn; the first tenth dropped as warm-up. Tax: p50 through the API minus p50 "
             "through the driver; ratio: their quotient.", "",
             "| read | requests | driver p50 / p99 ms | "
             + " | ".join(f"{names[w]} p50 / p99 ms | tax p50 ms | ratio" for w in ways) + " |",
             "|---|---:|---:|" + "---:|---:|---:|" * len(ways)]
    for read, row in result["reads"].items():
        cells = [f"{row[f'{w}_p50_ms']:g} / {row[f'{w}_p99_ms']:g} | {row[f'{w}_tax_p50_ms']:+g} | "
                 f"{row[f'{w}_ratio_p50']:g}x" for w in ways]
        driver = f"{row['driver_p50_ms']:g} / {row['driver_p99_ms']:g}"
        lines.append(f"| {read} | {row['requests']:,} | {driver} | " + " | ".join(cells) + " |")
    if "floor" in result:
        row = result["floor"]
        healthz = ", ".join(f"{names[w]} `/healthz` {row[f'{w}_healthz_p50_ms']:g} / "
                            f"{row[f'{w}_healthz_p99_ms']:g} ms" for w in ways)
        lines += ["", "The floor, p50 / p99 of a request that reads nothing: gunicorn alone "
                      f"(`bench/floor.py`, the same settings) {row['gunicorn_p50_ms']:g} / "
                      f"{row['gunicorn_p99_ms']:g} ms; {healthz}."]
    for way, profiles in (result.get("profile") or {}).items():
        for read, found in profiles.items():
            parts = ", ".join(f"{part} {share:g}%" for part, share in found["parts_percent"].items())
            top = ", ".join(f"{name} {share:g}%" for name, share in found["top_own_percent"][:8])
            lines += ["", f"Profile of {read} through {names[way]} ({found['samples']:,} samples): {parts}. "
                          f"Own time: {top}."]
    return [*lines, ""]


def chart(result: dict, path: Path) -> None:
    """p50/p99 per operation vs volume (log-log) and throughput per operation."""
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    for op in OPS:
        levels = [lv for lv in result["levels"] if op in lv["ops"]]
        if not levels:
            continue
        volumes = [lv["volume"] for lv in levels]
        p99 = [lv["ops"][op]["p99_ms"] for lv in levels]
        line, = latency.plot(volumes, p99, marker="o", label=f"{op} p99")
        latency.plot(volumes, [lv["ops"][op]["p50_ms"] for lv in levels], marker=".", linestyle="--",
                     color=line.get_color(), label=f"{op} p50")
        throughput.plot(volumes, [lv["ops"][op]["throughput_rps"] for lv in levels], marker="o", label=op)
    latency.axhline(25, color="grey", linewidth=0.8, linestyle=":", label="25 ms target")
    for axis, title, unit in ((latency, "latency under open-loop load", "ms"),
                              (throughput, "achieved throughput", "requests/s")):
        axis.set_xscale("log")
        axis.set_xlabel("records in the collection")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    latency.set_yscale("log")
    fig.suptitle(f"data-ingest on {result['server']}, {result['machine']['cpus']} CPUs "
                 f"({result['machine']['cpu_model']})", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """Write RESULTS.md (and latency.png when volume results exist)."""
    sections = ["# Benchmark results", "", "Generated by `bench/report.py` from the JSON files beside "
                "this one; how to run and read them: bench/README.md and docs/performance.md.", ""]
    for name, render in (("volumes.json", volumes_section), ("sharded.json", engines_section),
                         ("overhead.json", overhead_section),
                         ("soak.json", soak_section), ("tuning.json", tuning_section),
                         ("edge.json", edge_section), ("tax.json", tax_section)):
        result = load(name)
        if result:
            sections += render(result)
    for path in sorted(RESULTS.glob("volumes-*.json")):
        sections += volumes_section(load(path.name), path.name)
    volumes = load("volumes.json")
    if volumes:
        chart(volumes, RESULTS / "latency.png")
    (RESULTS / "RESULTS.md").write_text("\n".join(sections))
    print(f"report: wrote {RESULTS / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
