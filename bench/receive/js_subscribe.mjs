// Receive benchmark, Microsoft side: @azure/event-hubs (pinned in tests/sdk) EventHubConsumerClient
// .subscribe() over all partitions from the earliest event, until N events arrived.
//   node js_subscribe.mjs --port P --events N [--sdk-dir tests/sdk]
// Prints one JSON line like sw-bench-receive. Options favour throughput: maxBatchSize 1000,
// maxWaitTimeInSeconds 1, prefetchCount 3000 (the defaults are 1 event per batch).
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
const want = Number(argOf("--events", "100000"));
const cs =
  `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;

const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const consumer = new EventHubConsumerClient("$Default", cs, "eh1");
let n = 0;
let done;
const finished = new Promise((r) => (done = r));
const sub = consumer.subscribe(
  {
    processEvents: async (events) => {
      n += events.length;
      if (n >= want) done();
    },
    processError: async (err) => console.error(`subscribe error: ${err.message}`),
  },
  { startPosition: earliestEventPosition, maxBatchSize: 1000, maxWaitTimeInSeconds: 1,
    prefetchCount: 3000 },
);
const timeout = setTimeout(() => done(), 600000);
await finished;
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
clearTimeout(timeout);
await sub.close();
await consumer.close();
if (n < want) {
  console.error(`received ${n} of ${want}`);
  process.exit(1);
}
console.log(JSON.stringify({ mode: "js", events: n, seconds: +secs.toFixed(4),
  events_per_s: Math.round(n / secs),
  cpu_us_per_event: +((cpu.user + cpu.system) / n).toFixed(3) }));
