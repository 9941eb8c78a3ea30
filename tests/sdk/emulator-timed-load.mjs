// --load with --load-format timed, seen through Microsoft's @azure/event-hubs SDK:
// sw-gen --emit-enqueued writes "<enqueued time>\t<body>" lines; the emulator indexes the
// file (bodies re-read on delivery) and every event must arrive once, byte-identical,
// with enqueuedTimeUtc = its line's time, sequence numbers 0.. and increasing offsets
// per partition; an enqueued-time start position must skip exactly the earlier events.
// Bad files must fail with the line named. Run by ctest (tests/emulator.cmake):
//   node emulator-timed-load.mjs --emulator PATH --gen PATH
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checker, emulatorArgs, loadSdk, sleep } from "./emulator-testkit.mjs";

const { EventHubConsumerClient, earliestEventPosition } = await loadSdk();
const { emulatorPath, genPath } = emulatorArgs("emulator-timed-load.mjs");
const { check, failures } = checker();
const work = mkdtempSync(join(tmpdir(), "emu-timed-"));
const HUB = "timed";

// ---- the stream: 3 rescans of 40 MDVM images, with enqueued times ----
const file = join(work, "events.tsv");
const gen = spawnSync(genPath, ["--images", "40", "--findings", "5", "--rescans", "3", "--mix", "0,1,0",
  "--interval", "1h", "--emit-enqueued", "--out", file]);
check(gen.status === 0, "sw-gen --emit-enqueued exit status", gen.status, 0);
const again = spawnSync(genPath, ["--images", "40", "--findings", "5", "--rescans", "3", "--mix", "0,1,0",
  "--interval", "1h", "--emit-enqueued"], { maxBuffer: 1 << 28 }).stdout;
check(Buffer.compare(again, readFileSync(file)) === 0, "sw-gen --emit-enqueued is deterministic (same bytes twice)");
const lines = readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
const want = lines.map((l) => {
  const tab = l.indexOf("\t");
  return { ms: Date.parse(l.slice(0, tab)), body: l.slice(tab + 1) };
});
check(want.length > 500, "generated lines", want.length, ">500");
for (let i = 1; i < want.length; i++) {
  if (want[i].ms < want[i - 1].ms) {
    check(false, `sw-gen line ${i + 1} is earlier than line ${i}`);
    break;
  }
}
// The same bodies as without --emit-enqueued, only reordered.
const plain = spawnSync(genPath, ["--images", "40", "--findings", "5", "--rescans", "3", "--mix", "0,1,0",
  "--interval", "1h"], { maxBuffer: 1 << 28 }).stdout.toString("utf8").split("\n").filter((l) => l !== "");
const sorted = (a) => [...a].sort();
check(JSON.stringify(sorted(plain)) === JSON.stringify(sorted(want.map((w) => w.body))),
  "--emit-enqueued writes the bodies of the plain run", plain.length, want.length);
// Each body is enqueued 1-5 s after its scan (timeGenerated), never before it.
for (const w of want) {
  const m = /"timeGenerated":"([^"]+)"/i.exec(w.body);
  const lag = m ? w.ms - Date.parse(m[1]) : NaN;
  if (!(lag >= 0 && lag <= 5000)) {
    check(false, "enqueued - timeGenerated in 0..5 s", lag, "0..5000");
    break;
  }
}

// ---- the emulator ----
function startEmulator(extra) {
  const p = spawn(emulatorPath, ["--port", "0", "--hub", `${HUB}:4`, "--no-control-stdin",
    "--retain-count", "0", "--retain-bytes", "0", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  const ready = new Promise((resolve) => {
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      const m = /ready port=(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.on("exit", (code) => resolve({ code, err: () => err }));
  });
  return { p, ready };
}
const emu = startEmulator(["--load", file, "--load-format", "timed"]);
const port = await emu.ready;
check(typeof port === "number", "emulator started with the timed file", port, "a port");
const cs = `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;

async function receive(startPosition, n, ms) {
  const consumer = new EventHubConsumerClient("$Default", cs, HUB);
  const got = [];
  const sub = consumer.subscribe({
    processEvents: async (evs, ctx) => {
      for (const e of evs) got.push({ p: ctx.partitionId, e });
    },
    processError: async (err) => console.error(`subscribe error: ${err.message}`),
  }, { startPosition, maxBatchSize: 500, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true });
  const end = Date.now() + ms;
  while (got.length < n && Date.now() < end) await sleep(100);
  await sleep(500); // anything beyond n would be a duplicate
  await sub.close();
  await consumer.close();
  return got;
}

if (typeof port === "number") {
  const got = await receive(earliestEventPosition, want.length, 60000);
  check(got.length === want.length, "every loaded event received once", got.length, want.length);
  const byBody = new Map(want.map((w) => [w.body, w.ms]));
  const perPart = new Map();
  let bad = 0;
  for (const { p, e } of got) {
    const body = Buffer.from(e.body).toString("utf8");
    const ms = byBody.get(body);
    if (ms === undefined || e.enqueuedTimeUtc.getTime() !== ms) bad++;
    const prev = perPart.get(p);
    if (prev && (e.sequenceNumber !== prev.seq + 1 || Number(e.offset) <= prev.offset ||
        e.enqueuedTimeUtc.getTime() < prev.ms)) bad++;
    if (!prev && e.sequenceNumber !== 0) bad++;
    perPart.set(p, { seq: e.sequenceNumber, offset: Number(e.offset), ms: e.enqueuedTimeUtc.getTime() });
  }
  check(bad === 0, "bodies byte-identical, enqueuedTimeUtc = the line's time, seq 0.. and offsets increasing", bad, 0);
  check(perPart.size === 4, "round-robin over 4 partitions", perPart.size, 4);
  // An enqueued-time position: only events enqueued after it (the SDK's filter is exclusive).
  const cut = want[Math.floor(want.length / 2)].ms;
  const later = want.filter((w) => w.ms > cut).length;
  const got2 = await receive({ enqueuedOn: new Date(cut) }, later, 60000);
  check(got2.length === later, "events after an enqueued time", got2.length, later);
  check(got2.every(({ e }) => e.enqueuedTimeUtc.getTime() > cut), "all after the enqueued time");
}
emu.p.kill("SIGTERM");
const code = await new Promise((r) => emu.p.on("exit", (c) => r(c)));
check(code === 0, "emulator exits 0 on SIGTERM", code, 0);

// ---- bad files: exit status 1, the line named ----
const cases = [
  ["2026-01-05T02:00:00Z\t{}\nnot-a-time\t{}\n", "line 2: bad enqueued time 'not-a-time'"],
  ["{\"plain\":1}\n", "line 1: expected <RFC 3339 enqueued time><TAB><body>"],
  ["2026-01-05T02:00:09Z\ta\n2026-01-05T02:00:00Z\tb\n2026-01-05T02:00:01Z\tc\n2026-01-05T02:00:05Z\td\n" +
   "2026-01-05T02:00:08Z\te\n", "line 5: enqueued time 2026-01-05T02:00:08.000000Z is before"],
];
for (const [text, msg] of cases) {
  const f = join(work, "bad.tsv");
  writeFileSync(f, text);
  const e = startEmulator(["--load", f, "--load-format", "timed"]);
  const r = await e.ready;
  const err = typeof r === "object" ? r.err() : "(it started)";
  if (typeof r === "number") e.p.kill("SIGTERM");
  check(typeof r === "object" && r.code === 1 && err.includes(msg), "bad timed file rejected", err.trim(), msg);
}
const e = startEmulator(["--load", file, "--load-format", "csv"]);
const r = await e.ready;
check(typeof r === "object" && r.code === 1 && r.err().includes("--load-format 'csv': use plain or timed"),
  "unknown --load-format", typeof r === "object" ? r.err().trim() : r);
if (typeof r === "number") e.p.kill("SIGTERM");

rmSync(work, { recursive: true, force: true });
if (failures() > 0) {
  console.error(`${failures()} check(s) failed`);
  process.exit(1);
}
console.log(`ok: ${want.length} timed events`);
