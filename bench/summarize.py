#!/usr/bin/env python3
"""Turns the figures bench/run measured into its JSON record and Markdown tables.

Usage: summarize.py RESULTS_DIR RESULT_FILE (--update BENCHMARKS.md | --quick)

RESULTS_DIR contains what bench/run wrote: NAME.json from bench/report.lua for
each wrk run (ceiling.cN, CONFIG.ROUTE.cN), CONFIG.workflow.json from
`velro-origin loadtest --json`, CONFIG.peak_rss_kb, sqlite.cold_start.json and
argon2.json. The run settings come from the BENCH_* variables bench/run sets.

With --update FILE, the tables replace the text between the two marker lines
in FILE. With --quick, the exit status is 1 when any read's p95 is over
QUICK_MAX_READ_P95_MS, for a pass/fail check on pull requests.
"""

import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

# The targets, for a two-core machine on loopback.
MIN_CEILING_SHARE = 0.5
MAX_CACHED_P99_MS = 5.0
CACHED_P99_CONNECTIONS = 64
MAX_WORKFLOW_READ_P95_MS = 5.0
MAX_LOGIN_OVER_ARGON2_MS = 5.0
MAX_COLD_START_MS = 100.0
MAX_PEAK_RSS_KB = 64 * 1024
# The platform's response-time target, the maximum p95 of every read in a quick run.
QUICK_MAX_READ_P95_MS = 75.0

# Cached-read routes as named in the results, with their labels.
CACHED_ROUTES = [
    ("profile", "GET /users/profile"),
    ("generation", "GET /generations/{id}"),
    ("models", "GET /models"),
]
WORKFLOW_READS = ["GET /users/profile", "GET /generations", "GET /generations/{id}"]
LOGIN = "POST /auth/login"

BEGIN_MARKER = "<!-- bench/run origin table: begin -->"
END_MARKER = "<!-- bench/run origin table: end -->"


def load_json(path):
    return json.loads(path.read_text())


def wrk_figures(results_dir, name):
    """Reads one wrk run and converts it to requests/s and milliseconds."""
    wrk = load_json(results_dir / f"{name}.json")
    errors = sum(wrk["errors"].values())
    if errors > 0:
        sys.exit(
            f"error: {name}: wrk counted errors {wrk['errors']}, so its figures are invalid; "
            "run again, and check the server's log if it repeats"
        )
    seconds = wrk["duration_us"] / 1e6
    latency_ms = {key: value / 1000.0 for key, value in wrk["latency_us"].items()}
    return {
        "requests": wrk["requests"],
        "requests_per_s": wrk["requests"] / seconds,
        "bytes_per_response": round(wrk["bytes"] / wrk["requests"]),
        "latency_ms": latency_ms,
    }


def machine():
    memory_kb = None
    cpu = None
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_kb": memory_kb,
        "cpu": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average_at_start": os.environ.get("BENCH_LOAD_AVERAGE"),
    }


def git(*arguments):
    result = subprocess.run(["git", *arguments], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def target(name, configuration, measured, limit, met, unit):
    return {
        "target": name,
        "configuration": configuration,
        "measured": round(measured, 3),
        "limit": limit,
        "unit": unit,
        "met": met,
    }


def summarize_configuration(results_dir, name, connections, ceiling, argon2_ms):
    cached = {}
    targets = []
    for route, label in CACHED_ROUTES:
        cached[label] = {}
        for count in connections:
            figures = wrk_figures(results_dir, f"{name}.{route}.c{count}")
            share = figures["requests_per_s"] / ceiling[f"c{count}"]["requests_per_s"]
            figures["ceiling_share"] = share
            cached[label][f"c{count}"] = figures
            targets.append(target(f"{label} requests/s share of the ceiling, {count} connections",
                                  name, share, MIN_CEILING_SHARE, share >= MIN_CEILING_SHARE, "ratio"))
        p99 = cached[label][f"c{CACHED_P99_CONNECTIONS}"]["latency_ms"]["p99"]
        targets.append(target(f"{label} p99, {CACHED_P99_CONNECTIONS} connections",
                              name, p99, MAX_CACHED_P99_MS, p99 < MAX_CACHED_P99_MS, "ms"))

    workflow = load_json(results_dir / f"{name}.workflow.json")
    endpoints = workflow["endpoints"]
    for label in WORKFLOW_READS:
        p95 = endpoints[label]["p95_ms"]
        met = p95 is not None and p95 < MAX_WORKFLOW_READ_P95_MS
        targets.append(target(f"workflow {label} p95", name, p95 or 0.0,
                              MAX_WORKFLOW_READ_P95_MS, met, "ms"))
    login_p95 = endpoints[LOGIN]["p95_ms"]
    login_limit = argon2_ms + MAX_LOGIN_OVER_ARGON2_MS
    targets.append(target(f"workflow {LOGIN} p95 (one argon2 verification + {MAX_LOGIN_OVER_ARGON2_MS:g} ms)",
                          name, login_p95 or 0.0, round(login_limit, 3),
                          login_p95 is not None and login_p95 <= login_limit, "ms"))

    peak_rss_kb = int((results_dir / f"{name}.peak_rss_kb").read_text().strip())
    targets.append(target("peak RSS during the cached-read runs", name, peak_rss_kb / 1024,
                          MAX_PEAK_RSS_KB / 1024, peak_rss_kb < MAX_PEAK_RSS_KB, "MiB"))
    return {
        "cached_reads": cached,
        "peak_rss_kb": peak_rss_kb,
        "workflow": workflow,
    }, targets


def format_number(value, unit):
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.2f} ms"


def markdown(record):
    settings = record["settings"]
    lines = [
        f"Measured {record['date']} at commit `{(record['git_commit'] or 'unknown')[:12]}`"
        + (" with uncommitted changes" if record["git_dirty"] else "") + ".",
        f"Command: `{record['command']}`.",
        f"Machine: {record['machine']['cores']} cores ({record['machine']['cpu']}), "
        f"{record['machine']['memory_kb'] // 1024} MiB of memory, {record['machine']['kernel']}, "
        f"load average {record['machine']['load_average_at_start']} at the start; "
        f"{record['tools']['wrk']}, {record['tools']['rustc']}.",
        f"wrk: {settings['wrk_threads']} threads, {settings['duration_secs']} s per run after a "
        f"{settings['warmup_secs']} s warm-up run. Workflow: {settings['workflow_users']} users, "
        f"no think time, {settings['workflow_secs']} s.",
        "",
        "| configuration | route | connections | requests/s | share of ceiling | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for count, figures in record["ceiling"].items():
        lines.append(f"| ceiling | `GET /` (fixed JSON) | {count[1:]} | {figures['requests_per_s']:.0f} | 1.00 "
                     f"| {figures['latency_ms']['p50']:.2f} | {figures['latency_ms']['p99']:.2f} |")
    for name, configuration in record["configurations"].items():
        for label, by_count in configuration["cached_reads"].items():
            for count, figures in by_count.items():
                lines.append(f"| {name} | `{label}` | {count[1:]} | {figures['requests_per_s']:.0f} "
                             f"| {figures['ceiling_share']:.2f} | {figures['latency_ms']['p50']:.2f} "
                             f"| {figures['latency_ms']['p99']:.2f} |")
    lines += [
        "",
        "| configuration | workflow endpoint | requests | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, configuration in record["configurations"].items():
        for label, figures in configuration["workflow"]["endpoints"].items():
            lines.append(f"| {name} | `{label}` | {figures['total_requests']} | {figures['p50_ms'] or 0:.2f} "
                         f"| {figures['p95_ms'] or 0:.2f} | {figures['p99_ms'] or 0:.2f} | {figures['errors']} |")
    cold = record["cold_start_sqlite"]
    lines += [
        "",
        f"One argon2 verification alone: {record['argon2_verify']['median_ms']:.2f} ms (median of "
        f"{record['argon2_verify']['samples']}). Cold start on SQLite: median {cold['median_ms']:.1f} ms of "
        f"{cold['starts']} starts ({', '.join(f'{value:.1f}' for value in cold['times_ms'])} ms).",
        "",
        "| target | configuration | measured | limit | met |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for row in record["targets"]:
        comparison = ">=" if row["unit"] == "ratio" else "<"
        if row["target"].startswith(f"workflow {LOGIN}"):
            comparison = "<="
        lines.append(f"| {row['target']} | {row['configuration']} | {format_number(row['measured'], row['unit'])} "
                     f"| {comparison} {format_number(row['limit'], row['unit'])} | {'yes' if row['met'] else 'no'} |")
    return "\n".join(lines)


def update_file(path, table):
    text = path.read_text()
    begin = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER)
    if begin < 0 or end < begin:
        print(f"warning: {path} has no \"{BEGIN_MARKER}\" line, so it was not updated", file=sys.stderr)
        return
    updated = text[: begin + len(BEGIN_MARKER)] + "\n" + table + "\n" + text[end:]
    path.write_text(updated)
    print(f"updated the origin table in {path}")


def quick_failures(record):
    """Lists every read whose p95 is over the quick-mode limit."""
    failures = []
    for name, configuration in record["configurations"].items():
        for label, by_count in configuration["cached_reads"].items():
            for count, figures in by_count.items():
                if figures["latency_ms"]["p95"] > QUICK_MAX_READ_P95_MS:
                    failures.append(f"{name} {label} at {count[1:]} connections: p95 {figures['latency_ms']['p95']:.1f} ms")
        for label in WORKFLOW_READS:
            p95 = configuration["workflow"]["endpoints"][label]["p95_ms"]
            if p95 is None or p95 > QUICK_MAX_READ_P95_MS:
                failures.append(f"{name} workflow {label}: p95 {p95} ms")
    return failures


def main():
    arguments = sys.argv[1:]
    if len(arguments) < 3 or arguments[2] not in ("--update", "--quick"):
        sys.exit("usage: summarize.py RESULTS_DIR RESULT_FILE (--update BENCHMARKS.md | --quick)")
    results_dir = pathlib.Path(arguments[0])
    result_file = pathlib.Path(arguments[1])
    quick = arguments[2] == "--quick"
    update = None if quick else pathlib.Path(arguments[3])

    connections = [int(count) for count in os.environ["BENCH_CONNECTIONS"].split()]
    ceiling = {f"c{count}": wrk_figures(results_dir, f"ceiling.c{count}") for count in connections}
    argon2 = load_json(results_dir / "argon2.json")
    cold_start = load_json(results_dir / "sqlite.cold_start.json")

    configurations = {}
    targets = []
    for name in os.environ["BENCH_CONFIGURATIONS"].split():
        summary, configuration_targets = summarize_configuration(
            results_dir, name, connections, ceiling, argon2["median_ms"])
        configurations[name] = summary
        targets += configuration_targets
    targets.append(target("cold start to /health/ready = 200, median", "sqlite",
                          cold_start["median_ms"], MAX_COLD_START_MS,
                          cold_start["median_ms"] < MAX_COLD_START_MS, "ms"))

    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": os.environ["BENCH_COMMAND"],
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "tools": {"wrk": os.environ.get("BENCH_WRK"), "rustc": os.environ.get("BENCH_RUSTC")},
        "settings": {
            "wrk_threads": int(os.environ["BENCH_WRK_THREADS"]),
            "connections": connections,
            "duration_secs": int(os.environ["BENCH_DURATION_SECS"]),
            "warmup_secs": int(os.environ["BENCH_WARMUP_SECS"]),
            "workflow_users": int(os.environ["BENCH_WORKFLOW_USERS"]),
            "workflow_secs": int(os.environ["BENCH_WORKFLOW_SECS"]),
            "cold_starts": int(os.environ["BENCH_COLD_STARTS"]),
        },
        "ceiling": ceiling,
        "configurations": configurations,
        "cold_start_sqlite": cold_start,
        "argon2_verify": argon2,
        "targets": targets,
    }
    result_file.write_text(json.dumps(record, indent=2) + "\n")

    table = markdown(record)
    print()
    print(table)
    print()
    print(f"wrote {result_file}")
    if update is not None:
        update_file(update, table)

    if quick:
        failures = quick_failures(record)
        for failure in failures:
            print(f"read p95 over {QUICK_MAX_READ_P95_MS:g} ms: {failure}", file=sys.stderr)
        if failures:
            sys.exit(1)


if __name__ == "__main__":
    main()
