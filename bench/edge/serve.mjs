// Serves the edge worker and the baseline worker from one Miniflare instance,
// so both run in the same workerd process with the same cache service.
//
// Usage: node serve.mjs --edge-script PATH --baseline-script PATH
//            [--port N] [--var NAME=VALUE]... [--cf JSON]
//
// Both workers share one socket. Requests whose Host is `baseline.bench` go to
// the baseline worker through a Miniflare route, and every other request goes to
// the edge worker, which comes first in the worker list. Routing by Host keeps
// both workers behind the same entry path, so neither pays a hop the other skips.
//
// It prints `listening on http://127.0.0.1:PORT` once workerd accepts requests,
// and stops on SIGTERM or SIGINT, or when the process that started it exits, so
// a benchmark run that is killed does not leave workerd behind.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// Miniflare is installed with the edge's tools, not next to this file.
const require = createRequire(path.join(repoDir, "edge", "package.json"));
const { Miniflare, convertV4MiniflareOptions } = require("miniflare");

// Host name that selects the baseline worker.
const BASELINE_HOST = "baseline.bench";

// Must not be later than the build date of the workerd that miniflare bundles.
const COMPATIBILITY_DATE = "2026-11-01";

function parseArgs(argv) {
  const options = { port: 0, vars: {}, cf: undefined, edgeScript: undefined, baselineScript: undefined };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) {
      throw new Error(`${flag} needs a value`);
    }
    if (flag === "--port") {
      options.port = Number.parseInt(value, 10);
    } else if (flag === "--var") {
      const split = value.indexOf("=");
      if (split < 1) {
        throw new Error(`--var expects NAME=VALUE, got ${JSON.stringify(value)}`);
      }
      options.vars[value.slice(0, split)] = value.slice(split + 1);
    } else if (flag === "--cf") {
      options.cf = JSON.parse(value);
    } else if (flag === "--edge-script") {
      options.edgeScript = path.resolve(value);
    } else if (flag === "--baseline-script") {
      options.baselineScript = path.resolve(value);
    } else {
      throw new Error(`unknown option ${flag}`);
    }
  }
  if (!options.edgeScript || !options.baselineScript) {
    throw new Error("--edge-script and --baseline-script are required");
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
// miniflare 4's flat options, which the miniflare 5 bundled with wrangler still
// reads through convertV4MiniflareOptions. Its `modulesRules` do not convert, so
// the modules are listed one by one, as in edge/runtime/serve.mjs.
const miniflare = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: options.port,
    cf: options.cf,
    workers: [
      {
        name: "edge",
        modules: [
          { type: "ESModule", path: options.edgeScript },
          {
            type: "CompiledWasm",
            path: path.join(path.dirname(options.edgeScript), "index_bg.wasm"),
          },
        ],
        compatibilityDate: COMPATIBILITY_DATE,
        bindings: options.vars,
      },
      {
        name: "baseline",
        modules: [{ type: "ESModule", path: options.baselineScript }],
        compatibilityDate: COMPATIBILITY_DATE,
        routes: [`${BASELINE_HOST}/*`],
      },
    ],
  }),
);

const url = await miniflare.ready;
console.log(`listening on ${url.origin}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await miniflare.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// A background job of a bash script reads /dev/null, so stdin cannot signal the
// parent's exit as it does for edge/runtime/serve.mjs. When the parent exits, the
// process is re-parented and its parent pid changes.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) stop();
}, 1000);
