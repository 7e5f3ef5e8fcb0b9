// Serves the built edge worker (build/index.js) in workerd through miniflare's
// JavaScript API, for the end-to-end tests and the edge benchmark.
//
// Usage: node runtime/serve.mjs [--port N] [--var NAME=VALUE]... [--cf JSON] [--script PATH]
//
// It prints one line, `listening on http://127.0.0.1:PORT`, once workerd accepts
// requests, and stops when it gets SIGTERM or SIGINT or its stdin closes, so a
// test that dies does not leave workerd behind.
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import path from "node:path";
import { fileURLToPath } from "node:url";

const edgeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv) {
  const options = {
    port: 0,
    vars: {},
    cf: undefined,
    script: path.join(edgeDir, "build", "index.js"),
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) {
      throw new Error(`${flag} needs a value`);
    }
    i += 1;
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
    } else if (flag === "--script") {
      options.script = path.resolve(value);
    } else {
      throw new Error(`unknown option ${flag}`);
    }
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
// The options are in miniflare 4's flat form, which the miniflare 5 that wrangler
// bundles still reads through convertV4MiniflareOptions.
const miniflare = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: options.port,
    cf: options.cf,
    modules: [
      { type: "ESModule", path: options.script },
      { type: "CompiledWasm", path: path.join(path.dirname(options.script), "index_bg.wasm") },
    ],
    // Must not be later than the build date of the workerd that miniflare bundles.
    compatibilityDate: "2026-11-01",
    bindings: options.vars,
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
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
