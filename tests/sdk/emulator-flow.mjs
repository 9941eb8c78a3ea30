// Flow control between the emulator and Microsoft's @azure/event-hubs SDK when the SDK
// grants more credit than its session window admits: prefetchCount 3000 per partition
// against rhea's window of 2048 transfers (the options bench/receive/js_subscribe.mjs
// uses). The emulator must hand proton at most 256 deliveries per link that it has not
// written yet (its "info" reports the most it ever had: queued_max). Before that bound
// it queued up to the whole credit, proton walked all of them on every pass, and the
// emulator spun a core while the SDK got ~5,000 events/s. Every event must still arrive
// exactly once, in order per partition. Run by ctest (tests/emulator.cmake):
//   node emulator-flow.mjs --emulator PATH --gen PATH
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checker, emulatorArgs, loadSdk, sleep } from "./emulator-testkit.mjs";

const { EventHubConsumerClient, earliestEventPosition } = await loadSdk();
const { emulatorPath, genPath } = emulatorArgs("emulator-flow.mjs");
const { check, failures } = checker();
const work = mkdtempSync(join(tmpdir(), "emu-flow-"));
const HUB = "flow";
const QUEUED_MAX = 256;

// ---- 12,000 MDVM events of ~3 KB: 3,000 per partition, more than one credit window ----
const file = join(work, "events.ndjson");
const gen = spawnSync(genPath, ["--images", "600", "--findings", "20", "--mix", "0,1,0", "--out", file]);
check(gen.status === 0, "sw-gen exit status", gen.status, 0);
const bodies = readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
check(bodies.length >= 12000, "generated events", bodies.length, ">= 12000");

const emu = spawn(emulatorPath, ["--port", "0", "--hub", `${HUB}:4`, "--no-control-stdin", "--control-port", "0",
  "--retain-count", "0", "--retain-bytes", "0", "--load", file], { stdio: ["ignore", "pipe", "pipe"] });
let emuErr = "";
emu.stderr.on("data", (d) => (emuErr += d));
const ports = await new Promise((resolve) => {
  let out = "";
  emu.stdout.on("data", (d) => {
    out += d;
    const m = /ready port=(\d+) control-port=(\d+)/.exec(out);
    if (m) resolve({ amqp: Number(m[1]), control: Number(m[2]) });
  });
  emu.on("exit", (code) => resolve({ code }));
});

function control(line) {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: "127.0.0.1", port: ports.control }, () => c.write(line + "\n"));
    let buf = "";
    c.on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) {
        c.end();
        resolve(buf.split("\n")[0]);
      }
    });
    c.on("error", reject);
    setTimeout(() => reject(new Error(`control '${line}' timed out`)), 10000);
  });
}

try {
  check(ports.amqp !== undefined, "emulator started", ports, "ports", emuErr);
  if (ports.amqp !== undefined) {
    const cs = `Endpoint=sb://127.0.0.1:${ports.amqp};SharedAccessKeyName=RootManageSharedAccessKey;` +
      `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;
    const consumer = new EventHubConsumerClient("$Default", cs, HUB);
    const got = [];
    const sub = consumer.subscribe({
      processEvents: async (evs, ctx) => {
        for (const e of evs) got.push({ p: ctx.partitionId, seq: e.sequenceNumber, body: e.body });
      },
      processError: async (err) => console.error(`subscribe error: ${err.message}`),
    }, { startPosition: earliestEventPosition, maxBatchSize: 1000, maxWaitTimeInSeconds: 1,
      prefetchCount: 3000, skipParsingBodyAsJson: true });
    const end = Date.now() + 120000;
    while (got.length < bodies.length && Date.now() < end) await sleep(100);
    await sleep(500); // anything beyond the stream would be a duplicate
    try {
      await sub.close();
      await consumer.close();
    } catch (e) {
      console.error(`note: closing the SDK client: ${e.message}`); // not what this test checks
    }

    check(got.length === bodies.length, "every event received exactly once", got.length, bodies.length);
    const seen = new Set();
    const next = new Map();
    let bad = 0;
    for (const { p, seq, body } of got) {
      const b = Buffer.from(body).toString("utf8");
      if (seen.has(b)) bad++;
      seen.add(b);
      if (seq !== (next.get(p) ?? 0)) bad++;
      next.set(p, seq + 1);
    }
    check(bad === 0, "no duplicates; sequence numbers 0, 1, 2, ... per partition", bad, 0);
    const loaded = new Set(bodies);
    check([...seen].every((b) => loaded.has(b)), "bodies are the loaded bodies byte for byte");

    const info = await control(`info ${HUB}`);
    const m = /queued_max=(\d+)/.exec(info);
    check(m !== null, "info reports queued_max", info, "... queued_max=N");
    if (m) {
      const q = Number(m[1]);
      check(q > 0 && q <= QUEUED_MAX, `deliveries queued in proton per link stay within ${QUEUED_MAX}`, q,
        `1..${QUEUED_MAX}`);
    }
  }
} finally {
  emu.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
}
if (failures() > 0) {
  if (emuErr) console.error(`emulator stderr:\n${emuErr.slice(-4000)}`);
  console.error(`${failures()} check(s) failed`);
  process.exit(1);
}
console.log("ok: SDK with prefetchCount 3000 received every event once; emulator queued at most " +
  `${QUEUED_MAX} deliveries per link`);
process.exit(0);
