// Prints the edge benchmark's table and writes its JSON record.
//
// Usage: node summarize.mjs RESULTS_DIR RESULT_FILE
//
// RESULTS_DIR holds, per target, NAME.json (the line report.lua printed),
// NAME.command (the wrk command) and, for the edge targets, NAME.cache_status.
// The machine and run settings come from the BENCH_* variables that
// bench/edge/run sets.
import fs from "node:fs";
import path from "node:path";

// The edge should keep at least this share of the baseline's requests/s.
const TARGET_RATIO = 0.8;

const TARGETS = [
  { name: "edge_public_hit", label: "edge public HIT (GET /models)" },
  { name: "edge_private_hit", label: "edge private HIT (GET /users/profile)" },
  { name: "baseline", label: "baseline (Cache API match only)" },
];

const [resultsDir, resultFile] = process.argv.slice(2);
if (!resultsDir || !resultFile) {
  throw new Error("usage: node summarize.mjs RESULTS_DIR RESULT_FILE");
}

function readOptional(file) {
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : undefined;
}

const measured = {};
for (const { name } of TARGETS) {
  const wrk = JSON.parse(fs.readFileSync(path.join(resultsDir, `${name}.json`), "utf8"));
  const errors = Object.values(wrk.errors).reduce((sum, count) => sum + count, 0);
  if (errors > 0) {
    throw new Error(`${name}: wrk counted errors ${JSON.stringify(wrk.errors)}, so the figures are invalid; run again, and check the servers if it repeats`);
  }
  measured[name] = {
    requests: wrk.requests,
    duration_s: wrk.duration_us / 1e6,
    requests_per_s: wrk.requests / (wrk.duration_us / 1e6),
    bytes_per_response: Math.round(wrk.bytes / wrk.requests),
    latency_ms: Object.fromEntries(
      Object.entries(wrk.latency_us).map(([key, micros]) => [key, micros / 1000]),
    ),
    errors: wrk.errors,
    wrk_command: readOptional(path.join(resultsDir, `${name}.command`)),
    cache_status_after_run: readOptional(path.join(resultsDir, `${name}.cache_status`)),
  };
}

const baselineRate = measured.baseline.requests_per_s;
const ratios = {
  edge_public_hit: measured.edge_public_hit.requests_per_s / baselineRate,
  edge_private_hit: measured.edge_private_hit.requests_per_s / baselineRate,
};

const rows = TARGETS.map(({ name, label }) => {
  const result = measured[name];
  const ratio = ratios[name];
  return [
    label,
    result.requests_per_s.toFixed(0),
    result.latency_ms.p50.toFixed(2),
    result.latency_ms.p99.toFixed(2),
    ratio === undefined ? "-" : ratio.toFixed(2),
  ];
});
const header = ["target", "requests/s", "p50 ms", "p99 ms", "edge/baseline"];
const widths = header.map((title, column) =>
  Math.max(title.length, ...rows.map((row) => row[column].length)),
);
const line = (cells) =>
  cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join("  ");

console.log("");
console.log(line(header));
console.log(widths.map((width) => "-".repeat(width)).join("  "));
rows.forEach((row) => console.log(line(row)));
console.log("");
for (const [name, ratio] of Object.entries(ratios)) {
  const verdict = ratio >= TARGET_RATIO ? "meets" : "misses";
  console.log(`${name}: edge/baseline ${ratio.toFixed(2)} ${verdict} the target of ${TARGET_RATIO}`);
}

const env = process.env;
const record = {
  date_utc: new Date().toISOString(),
  command: env.BENCH_COMMAND,
  settings: {
    connections: Number(env.BENCH_CONNECTIONS),
    duration_s: Number(env.BENCH_DURATION_SECS),
    warmup_s: Number(env.BENCH_WARMUP_SECS),
    wrk_threads: Number(env.BENCH_WRK_THREADS),
  },
  machine: {
    cores: Number(env.BENCH_CORES),
    memory_kb: Number(env.BENCH_MEMORY_KB),
    cpu: env.BENCH_CPU,
    kernel: env.BENCH_KERNEL,
    workerd: env.BENCH_WORKERD,
    load_generator: env.BENCH_WRK,
  },
  note: "Local workerd runs each worker on one thread and keeps Miniflare's simulated cache in memory, and wrk shares the cores; only the edge/baseline ratio is meaningful.",
  target_ratio: TARGET_RATIO,
  ratios,
  results: measured,
};
fs.mkdirSync(path.dirname(resultFile), { recursive: true });
fs.writeFileSync(resultFile, `${JSON.stringify(record, null, 2)}\n`);
console.log(`\nwrote ${resultFile}`);
