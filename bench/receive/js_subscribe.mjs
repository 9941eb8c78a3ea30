// Microsoft's side of the receive and e2e benchmarks: @azure/event-hubs (pinned in tests/sdk)
// EventHubConsumerClient.subscribe() over all partitions from the earliest event, until N
// events arrived.
//   node js_subscribe.mjs --port P --events N [--hub H] [--parse] [--sdk-dir tests/sdk]
// --parse (bench/e2e, peer (d)): JSON.parse each body and nothing else — what a user would
// otherwise write; skipParsingBodyAsJson so the SDK does not parse the data section itself
// and we parse the bytes once, explicitly.
// Prints one JSON line: mode (js | js_parse), events, seconds, events_per_s, cpu_seconds,
// cpu_us_per_event, peak_rss_kb, and with --parse parse_errors and parsed. Options favour
// throughput: maxBatchSize 1000, maxWaitTimeInSeconds 1, prefetchCount 3000 (the defaults
// deliver one event per batch).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const argOf = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const here = dirname(fileURLToPath(import.meta.url));
const sdkDir = resolve(argOf("--sdk-dir", join(here, "..", "..", "tests", "sdk")));
const require = createRequire(join(sdkDir, "package.json"));
let sdk;
try {
  sdk = await import(pathToFileURL(require.resolve("@azure/event-hubs")).href);
} catch (e) {
  console.error(`cannot load @azure/event-hubs from ${sdkDir} (${e.message}); run npm ci there`);
  process.exit(1);
}
const { EventHubConsumerClient, earliestEventPosition } = sdk;
const port = argOf("--port");
const hub = argOf("--hub", "eh1");
const parse = args.includes("--parse");
const want = Number(argOf("--events", "100000"));
if (!port || !(want > 0)) {
  console.error("usage: node js_subscribe.mjs --port P --events N [--hub H] [--parse] [--sdk-dir DIR]");
  process.exit(2);
}
const cs =
  `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;

const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const consumer = new EventHubConsumerClient("$Default", cs, hub);
let n = 0;
let bad = 0;
let sink = 0;
let done;
const finished = new Promise((r) => (done = r));
const parseAll = (events) => {
  for (const ev of events) {
    try {
      const b = ev.body;
      const o = JSON.parse(Buffer.isBuffer(b) || b instanceof Uint8Array ? Buffer.from(b).toString("utf8") : String(b));
      sink += o === null ? 0 : 1;
    } catch {
      bad++;
    }
  }
};
const sub = consumer.subscribe(
  {
    processEvents: async (events) => {
      if (parse) parseAll(events);
      n += events.length;
      if (n >= want) done();
    },
    processError: async (err) => console.error(`subscribe error: ${err.message}`),
  },
  { startPosition: earliestEventPosition, maxBatchSize: 1000, maxWaitTimeInSeconds: 1,
    prefetchCount: 3000, skipParsingBodyAsJson: parse },
);
const timeout = setTimeout(() => done(), 1800000);
await finished;
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
clearTimeout(timeout);
if (n < want) {
  console.error(`received ${n} of ${want}`);
  process.exit(1);
}
const m = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/);
const out = { mode: parse ? "js_parse" : "js", events: n, seconds: +secs.toFixed(4),
  events_per_s: Math.round(n / secs), cpu_seconds: +((cpu.user + cpu.system) / 1e6).toFixed(3),
  cpu_us_per_event: +((cpu.user + cpu.system) / n).toFixed(3), peak_rss_kb: m ? Number(m[1]) : 0 };
if (parse) Object.assign(out, { parse_errors: bad, parsed: sink });
console.log(JSON.stringify(out));
// Closing may wait for the receivers' in-flight batches; the figures are already out.
await Promise.race([Promise.all([sub.close(), consumer.close()]), new Promise((r) => setTimeout(r, 5000))]);
process.exit(0);
