// End-to-end tests of `scanwatch run` (tests/service.cmake):
//   node service-e2e.mjs --scanwatch PATH --emulator PATH --gen PATH --work DIR --scenario NAME
// Each scenario starts its own emulator on an ephemeral loopback port, publishes a
// sw-gen Defender stream over 4 partitions with Microsoft's @azure/event-hubs producer
// (one event per send, round-robin, so enqueued order = stream order), runs the service
// with the dir: mail sink and a diff log, and compares its diff records with offline
// processing of the same stream (`scanwatch process`), which is the specification.
//
// Scenarios:
//   exact     one uninterrupted run: diff records equal, one mail per diff record, bad
//             events dead-lettered while the partitions keep flowing
//   sigterm   SIGTERM mid-stream, exit 0, restart: nothing lost, nothing twice
//   sigkill   SIGKILL at random points (several times), restart each time: diff records
//             exact, no mail lost, mails repeated at most once per kill (the in-flight one)
//   replay    after a full run, `replay` from the start sends nothing and diffs nothing;
//             `replay --renotify` mails the history again
//   rebuild   `rebuild --partition P` of every partition into an empty state restores the
//             same image state as the live run, with no mail
//   replicas  3 replicas with a route hub (each forwards its export partitions' findings
//             keyed by image) produce the same diff records and mails as one replica
import { spawn, spawnSync } from "node:child_process";
import { randomBytes, createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { createServer } from "node:net";
import { diffKey, readDiffs } from "../chaos/diffs.mjs";

let sdk;
try {
  sdk = await import("@azure/event-hubs");
} catch (e) {
  console.error(`FAIL: cannot load @azure/event-hubs (${e.code ?? e.message}); run npm ci in tests/sdk`);
  process.exit(1);
}
const { EventHubProducerClient } = sdk;

const args = process.argv.slice(2);
const argOf = (n) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : undefined;
};
const SCANWATCH = argOf("--scanwatch");
const EMULATOR = argOf("--emulator");
const GEN = argOf("--gen");
const WORK = argOf("--work");
const SCENARIO = argOf("--scenario") ?? "exact";
// extra settings for every `scanwatch run`, e.g. --service-args "--decode-ahead false"
const SERVICE_ARGS = (argOf("--service-args") ?? "").split(" ").filter((a) => a);
if (!SCANWATCH || !EMULATOR || !GEN || !WORK) {
  console.error("usage: node service-e2e.mjs --scanwatch P --emulator P --gen P --work DIR --scenario S");
  process.exit(2);
}

let failures = 0;
function check(cond, what, got, want) {
  if (cond) {
    console.log(`ok: ${what}`);
    return;
  }
  failures++;
  const detail = got !== undefined || want !== undefined ? ` (got ${JSON.stringify(got)}, want ${JSON.stringify(want)})` : "";
  console.error(`FAIL: ${what}${detail}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

// ---- the stream and its specification ----
// One scan's records spread over 5 s of scan time; through several replicas they reach
// the route hub in any order, so the quiet time must exceed the spread (default 300 s).
// One replica merges partitions in enqueued order and keeps each scan's order.
const SCAN_QUIET = SCENARIO === "replicas" ? "10s" : "2s";
const streamPath = join(WORK, "stream.ndjson");
{
  const r = spawnSync(GEN, ["--seed", "7", "--images", "12", "--findings", "15", "--rescans", "2",
    "--churn", "0.2", "--clean", "0.1", "--other", "0.05", "--bad", "0.01", "--snapshot-every", "3",
    "--out", streamPath]);
  if (r.status !== 0) {
    console.error(`FAIL: sw-gen: ${r.stderr}`);
    process.exit(1);
  }
}
const lines = readFileSync(streamPath, "utf8").split("\n").filter((l) => l.length > 0);

const expected = (() => {
  const dir = join(WORK, "offline");
  mkdirSync(dir, { recursive: true });
  const r = spawnSync(SCANWATCH, ["process", "--state", join(dir, "state"), "--diff-log", join(dir, "diffs.ndjson"),
    "--scan-quiet", SCAN_QUIET, "--log-level", "error", streamPath]);
  if (r.status !== 0) {
    console.error(`FAIL: scanwatch process: ${r.stderr}`);
    process.exit(1);
  }
  return readDiffs(join(dir, "diffs.ndjson")).map(diffKey).sort();
})();
console.log(`stream: ${lines.length} events; offline processing: ${expected.length} diff records`);
if (expected.length < 10) {
  console.error("FAIL: the generated stream makes too few diff records to test anything");
  process.exit(1);
}

// ---- the emulator ----
const HUB = "export";
const KEY = randomBytes(24).toString("base64");
const KEY_NAME = "RootManageSharedAccessKey";
let emu;
let emuPort;
async function startEmulator() {
  emu = spawn(EMULATOR, ["--port", "0", "--hub", `${HUB}:4`, "--hub", "route:4", "--sas-key", `${KEY_NAME}=${KEY}`,
    "--no-control-stdin", "--log-level", "error"], { stdio: ["ignore", "pipe", "inherit"] });
  emuPort = await new Promise((resolve, reject) => {
    let buf = "";
    emu.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/ready port=(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    emu.on("exit", (code) => reject(new Error(`emulator exited ${code}`)));
    setTimeout(() => reject(new Error("emulator did not start")), 15000);
  });
}
const connStr = () =>
  `Endpoint=sb://127.0.0.1:${emuPort};SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${KEY};UseDevelopmentEmulator=true`;

// keyed: every event of one image goes to one partition (the route-hub layout),
// by the image digest in the body as partition key.
// paced: a pause whenever the stream moves to the next day's scans, as Defender's daily
// rescans arrive a day apart (what several replicas need: see docs/deploy.md).
async function publish(from, to, keyed = false, paced = false) {
  const producer = new EventHubProducerClient(connStr(), HUB);
  try {
    const ids = await producer.getPartitionIds();
    let day = null;
    for (let i = from; i < to; i++) {
      const t = lines[i].match(/"timeGenerated":"(\d{4}-\d\d-\d\d)/i);
      if (paced && t && day !== null && t[1] !== day) {
        await sleep(3000);
      }
      day = t ? t[1] : day;
      const digest = lines[i].match(/sha256:[0-9a-f]{64}/);
      const opts = keyed ? { partitionKey: digest ? digest[0] : `line-${i}` } : { partitionId: ids[i % ids.length] };
      await producer.sendBatch([{ body: Buffer.from(lines[i], "utf8") }], opts);
    }
  } finally {
    await producer.close();
  }
}

// ---- the service ----
function serviceArgs(dir, extra = []) {
  mkdirSync(dir, { recursive: true });
  return ["--connection-string", connStr(), "--eventhub", HUB, "--state-dir", join(dir, "state"),
    "--mail-sink", `dir:${join(dir, "mail")}`, "--mail-to", "secops@contoso.example", "--mail-rate", "6000",
    "--diff-log", join(dir, "diffs.ndjson"), "--scan-quiet", SCAN_QUIET, "--metrics-port", "-1",
    "--lag-poll-interval", "200ms", "--progress-interval", "0", "--log-level", "warn", ...SERVICE_ARGS,
    ...extra];
}
const services = new Set(); // killed at the end if a failure left them running
function startService(dir, extra = []) {
  const p = spawn(SCANWATCH, ["run", ...serviceArgs(dir), ...extra], { stdio: ["ignore", "inherit", "pipe"] });
  services.add(p);
  p.on("exit", () => services.delete(p));
  p.stderrText = "";
  p.stderr.on("data", (d) => {
    p.stderrText += d;
  });
  p.done = new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
  return p;
}
function mails(dir) {
  const d = join(dir, "mail");
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f.endsWith(".json")).map((f) => readFileSync(join(d, f), "utf8"));
}
// A mail's identity: its rendered request (same diff record + route = same bytes).
const mailId = (m) => createHash("sha256").update(m).digest("hex");

async function waitForDiffs(dir, n, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (readDiffs(join(dir, "diffs.ndjson")).length >= n && mails(dir).length >= n) {
      await sleep(500); // anything extra would show up now
      return true;
    }
    await sleep(100);
  }
  return false;
}
function compareDiffs(dir, what) {
  const got = readDiffs(join(dir, "diffs.ndjson")).map(diffKey).sort();
  const dups = got.length - new Set(got).size;
  const missing = expected.filter((k) => !got.includes(k));
  const extra = got.filter((k) => !expected.includes(k));
  check(dups === 0, `${what}: no diff record twice`, dups, 0);
  check(missing.length === 0, `${what}: no diff record lost`, missing.slice(0, 3), []);
  check(extra.length === 0, `${what}: no unexpected diff record`, extra.slice(0, 3), []);
}
function stateDump(dir) {
  const r = spawnSync(SCANWATCH, ["state", "images", "--state", join(dir, "state"), "--json"]);
  return r.stdout.toString().split("\n").filter((l) => l).map((l) => {
    const o = JSON.parse(l);
    return JSON.stringify([o.image, o.last_scan, o.findings]);
  }).sort();
}

// ---- scenarios ----
async function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
async function get(port, path) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, text: await r.text() };
}
function metric(text, name, labels = "") {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}"]/g, (c) => `\\${c}`)}\\}` : ""} (\\S+)$`, "m");
  const m = text.match(re);
  return m ? Number(m[1]) : undefined;
}

async function exact(keyed = false) {
  const dir = join(WORK, "exact");
  await publish(0, lines.length, keyed);
  const port = await freePort();
  const svc = startService(dir, ["--metrics-port", String(port), "--metrics-bind", "127.0.0.1"]);
  const ok = await waitForDiffs(dir, expected.length, 60000);
  check(ok, "all diff records and mails arrive within 60 s");
  if (!ok) console.error(svc.stderrText.slice(-3000));
  const health = await get(port, "/healthz");
  check(health.status === 200, "/healthz answers 200", health.status, 200);
  const ready = await get(port, "/readyz");
  check(ready.status === 200 && /4 partitions receiving/.test(ready.text), "/readyz: ready, 4 partitions", ready.text, "ready: 4 partitions receiving");
  await sleep(1200); // metrics are refreshed every second
  const metrics = (await get(port, "/metrics")).text;
  const events = [0, 1, 2, 3].reduce((sum, p) =>
    sum + ["qualys", "mdvm", "individual", "skipped", "bad"].reduce((a, sh) => a + (metric(metrics, "scanwatch_events_total", `partition="${p}",shape="${sh}"`) ?? 0), 0), 0);
  check(events === lines.length, "metrics: events by partition and shape add up to the stream", events, lines.length);
  check(metric(metrics, "scanwatch_diff_records_total") === expected.length, "metrics: diff records", metric(metrics, "scanwatch_diff_records_total"), expected.length);
  check(metric(metrics, "scanwatch_mails", 'state="sent"') === expected.length, "metrics: mails sent", metric(metrics, "scanwatch_mails", 'state="sent"'), expected.length);
  check(metric(metrics, "scanwatch_outbox_depth") === 0, "metrics: outbox drained", metric(metrics, "scanwatch_outbox_depth"), 0);
  check(/^scanwatch_bad_events_total\{reason="[a-z_]+"\} [1-9]/m.test(metrics), "metrics: bad events by reason");
  check(/^scanwatch_notified_new_findings\{severity="Critical"\} \d+/m.test(metrics), "metrics: new findings by severity");
  check(/^scanwatch_partition_lag_events\{partition="3"\} 0$/m.test(metrics), "metrics: partition lag is 0 when caught up");
  check(/^scanwatch_processing_latency_seconds_count [1-9]/m.test(metrics), "metrics: processing latency histogram");
  check(metric(metrics, "scanwatch_windows_closed_total") >= expected.length, "metrics: windows closed");
  svc.kill("SIGTERM");
  const { code } = await svc.done;
  check(code === 0, "SIGTERM: exit status 0", code, 0);
  compareDiffs(dir, "uninterrupted run");
  const m = mails(dir);
  check(m.length === expected.length, "one mail per diff record", m.length, expected.length);
  const dl = spawnSync(SCANWATCH, ["state", "dead-letter", "--state", join(dir, "state"), "--json"]).stdout
    .toString().split("\n").filter((l) => l);
  const badInStream = spawnSync(SCANWATCH, ["decode", streamPath]).stderr.toString().match(/bad: (\d+)/);
  check(dl.length > 0 && badInStream && dl.length === Number(badInStream[1]),
    "every bad event is in the dead letter, and the partitions kept flowing", dl.length, badInStream && Number(badInStream[1]));
  return dir;
}

async function sigterm() {
  const dir = join(WORK, "sigterm");
  const half = Math.floor(lines.length / 2);
  await publish(0, half);
  let svc = startService(dir);
  await sleep(2500);
  svc.kill("SIGTERM");
  const t0 = Date.now();
  const { code } = await svc.done;
  check(code === 0, "SIGTERM mid-stream: exit status 0", code, 0);
  check(Date.now() - t0 < 25000, "SIGTERM: stopped within shutdown_timeout", Date.now() - t0, "< 25000 ms");
  await publish(half, lines.length);
  svc = startService(dir);
  check(await waitForDiffs(dir, expected.length, 60000), "restart: all diff records arrive");
  svc.kill("SIGTERM");
  await svc.done;
  compareDiffs(dir, "SIGTERM and restart");
  const m = mails(dir);
  check(m.length === expected.length && new Set(m.map(mailId)).size === m.length,
    "SIGTERM and restart: every mail exactly once", m.length, expected.length);
}

async function sigkill() {
  const dir = join(WORK, "sigkill");
  await publish(0, lines.length);
  // Windows close 2 s (scan_quiet) after the stream is read and mails go out at
  // 10/s, so kills land while reading, while windows apply and while mailing.
  const kills = 6;
  const slow = ["--mail-rate", "600"];
  let mailsBefore = 0;
  for (let i = 0; i < kills; i++) {
    const svc = startService(dir, slow);
    await sleep(500 + Math.floor(Math.random() * 4500));
    svc.kill("SIGKILL");
    await svc.done;
    const now = mails(dir).length;
    console.log(`kill ${i + 1}: ${now - mailsBefore} mails written by this run`);
    mailsBefore = now;
  }
  const svc = startService(dir, slow);
  check(await waitForDiffs(dir, expected.length, 90000), "after 6 SIGKILLs: all diff records arrive");
  svc.kill("SIGTERM");
  await svc.done;
  compareDiffs(dir, "SIGKILL x6 and restart");
  const ids = mails(dir).map(mailId);
  const distinct = new Set(ids).size;
  check(distinct === expected.length, "SIGKILL: no mail lost", distinct, expected.length);
  check(ids.length - distinct <= kills, "SIGKILL: at most one repeated (in-flight) mail per kill",
    ids.length - distinct, `<= ${kills}`);
}

async function replay() {
  const dir = await exact();
  const before = mails(dir).length;
  const diffsBefore = readDiffs(join(dir, "diffs.ndjson")).length;
  for (const p of ["0", "1", "2", "3"]) {
    const r = spawnSync(SCANWATCH, ["replay", "--partition", p, "--from-time", "2000-01-01T00:00:00Z",
      ...serviceArgs(dir)], { timeout: 60000 });
    check(r.status === 0, `replay --partition ${p}: exit 0`, r.status, 0);
  }
  check(mails(dir).length === before, "replay without --renotify mails nothing", mails(dir).length, before);
  check(readDiffs(join(dir, "diffs.ndjson")).length === diffsBefore, "replay without --renotify diffs nothing");
  const r = spawnSync(SCANWATCH, ["replay", "--partition", "0", "--from-time", "2000-01-01T00:00:00Z", "--renotify",
    ...serviceArgs(dir)], { timeout: 60000 });
  check(r.status === 0, "replay --renotify: exit 0", r.status, 0);
  check(mails(dir).length > before, "replay --renotify mails the partition's history again", mails(dir).length, `> ${before}`);
}

async function rebuild() {
  const dir = await exact(true);
  const live = stateDump(dir);
  const rdir = join(WORK, "rebuilt");
  for (const p of ["0", "1", "2", "3"]) {
    const r = spawnSync(SCANWATCH, ["rebuild", "--partition", p, ...serviceArgs(rdir)], { timeout: 60000 });
    check(r.status === 0, `rebuild --partition ${p}: exit 0`, r.status, 0);
  }
  const rebuilt = stateDump(rdir);
  check(JSON.stringify(rebuilt) === JSON.stringify(live), "rebuild restores every image's state",
    rebuilt.length, live.length);
  check(mails(rdir).length === 0, "rebuild sends no mail", mails(rdir).length, 0);
}

async function replicas() {
  // Replicas run first and keep up with the producer, as they would with Defender's
  // live stream; each owns export and route partitions p mod 3.
  const dirs = [0, 1, 2].map((i) => join(WORK, `replica-${i}`));
  const svcs = dirs.map((dir, i) =>
    startService(dir, ["--replica-count", "3", "--replica-index", String(i), "--route-hub", "route"]));
  await sleep(1500);
  await publish(0, lines.length, false, true);
  const end = Date.now() + 90000;
  const all = () => dirs.flatMap((d) => readDiffs(join(d, "diffs.ndjson")));
  while (Date.now() < end && (all().length < expected.length || dirs.flatMap(mails).length < expected.length)) {
    await sleep(200);
  }
  await sleep(1000);
  for (const svc of svcs) svc.kill("SIGTERM");
  const codes = await Promise.all(svcs.map((p) => p.done));
  check(codes.every((c) => c.code === 0), "3 replicas: each exits 0 on SIGTERM", codes.map((c) => c.code), [0, 0, 0]);
  const got = all().map(diffKey).sort();
  const same = JSON.stringify(got) === JSON.stringify(expected);
  check(same, "3 replicas + route hub: the same diff records as one replica", got.length, expected.length);
  if (!same) for (const svc of svcs) console.error(svc.stderrText.slice(-1500));
  const perReplica = dirs.map((d) => readDiffs(join(d, "diffs.ndjson")).length);
  check(perReplica.filter((n) => n > 0).length >= 2, "the images' state is spread over the replicas", perReplica, "> 0 on 2+ replicas");
  const ids = dirs.flatMap(mails).map(mailId);
  check(ids.length === expected.length && new Set(ids).size === ids.length, "3 replicas: every mail exactly once",
    ids.length, expected.length);
}

const scenarios = { exact, sigterm, sigkill, replay, rebuild, replicas };
try {
  await startEmulator();
  if (!scenarios[SCENARIO]) throw new Error(`unknown scenario ${SCENARIO}`);
  await scenarios[SCENARIO]();
} catch (e) {
  failures++;
  console.error(`FAIL: ${e.stack ?? e}`);
} finally {
  for (const p of services) p.kill("SIGKILL"); // they share our stdout: ctest would wait for them
  emu?.kill("SIGTERM");
}
console.log(failures === 0 ? `${SCENARIO}: all checks passed` : `${SCENARIO}: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
