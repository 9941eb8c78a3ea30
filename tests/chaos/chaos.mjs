// Chaos test of `scanwatch run` (issue 9, item 1):
//   node tests/chaos/chaos.mjs --scanwatch P --emulator P --gen P --fake-graph P --work DIR
//        [--seed N] [--kills N] [--images N] [--rescans N] [--mail-rate N] [--min-up MS]
//        [--max-up MS] [--report FILE.json] [--summary FILE.md]
//
// 1. A sw-gen Defender stream; its specification is `scanwatch process` of the same file.
// 2. An undisturbed run: the emulator (hub "calm"), `scanwatch run` with the Graph sink and
//    the fake Graph, no faults. Its mails are the mails to expect.
// 3. The chaos run (hub "chaos"): the stream is published in chunks; before each chunk the
//    service is started, and SIGKILLed after a random time (some during start-up). All the
//    while the emulator drops connections, closes them with amqp:connection:forced, detaches
//    links (detach-forced, server-busy) and refuses attaches (server-busy), and the fake Graph
//    answers some sendMail requests with 429 + Retry-After, 503, 504, slow 202s (some accepted
//    at once and answered late) and responses slower than http_timeout (the client gives up;
//    Graph did not accept them).
//    Then faults stop and a last run drains everything.
// 4. Compared with the undisturbed run: diff records (diff_log) lost / duplicated /
//    unexpected, mails (the fake Graph's accepted sendMail requests) lost / duplicated /
//    unexpected, and mails in flight at each kill: sendMail requests the fake Graph received
//    from that process minus the answers that process logged acting on ("mail sent" is logged
//    after the outbox entry is deleted, so a mail with no such line is the only kind that can
//    be sent again). The bar: 0 lost, 0 duplicated diff records, duplicated mails <= the sum
//    of mails in flight at the kills.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import {
  Checks, Emulator, FakeGraph, Service, compareKeys, cutNear, diffKey, generate, httpGet, mailKey, mailOutcomes, metric,
  offlineDiffs, parseArgs, prng, scanStarts, sleep,
} from "./harness.mjs";

const o = parseArgs(process.argv.slice(2), {
  scanwatch: "", emulator: "", gen: "", fakeGraph: "", work: "", seed: 1, kills: 30, images: 40, rescans: 3,
  mailRate: 300, minUp: 300, maxUp: 3000, report: "", summary: "", drainTimeout: 180,
});
for (const k of ["scanwatch", "emulator", "gen", "fakeGraph", "work"]) {
  if (!o[k]) {
    console.error(`usage: chaos.mjs --scanwatch P --emulator P --gen P --fake-graph P --work DIR [--seed N] [--kills N] ...; missing --${k}`);
    process.exit(2);
  }
}
const t0 = Date.now();
const checks = new Checks();
const check = checks.check.bind(checks);
const rng = prng(o.seed);
rmSync(o.work, { recursive: true, force: true });
mkdirSync(o.work, { recursive: true });

const streamPath = join(o.work, "stream.ndjson");
const lines = generate(o.gen, streamPath, { seed: o.seed, images: o.images, rescans: o.rescans });
const spec = offlineDiffs(o.scanwatch, streamPath, join(o.work, "offline"), "2s");
console.log(`stream: ${lines.length} events (seed ${o.seed}); offline processing: ${spec.length} diff records`);

const emu = new Emulator(o.emulator, ["calm:4", "chaos:4"]);
const graph = new FakeGraph(o.fakeGraph);
const report = {
  command: `scripts/chaos --seed ${o.seed} --kills ${o.kills}`,
  seed: o.seed, kills_requested: o.kills, stream: { events: lines.length, images: o.images, rescans: o.rescans },
  expected_diff_records: spec.length,
};

// Waits until the service has written `n` diff records, Graph holds `mails` distinct mails and
// the outbox and mail queue are empty, stable for a moment.
async function drained(svc, n, wantMails, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let stableSince = 0;
  while (Date.now() < end) {
    const m = await svc.metrics();
    const distinct = new Set((await graph.get("mails")).map((x) => mailKey(x.request))).size;
    const done = svc.diffs().length >= n && distinct >= wantMails && metric(m, "scanwatch_outbox_depth") === 0 &&
      metric(m, "scanwatch_mails", 'state="pending"') === 0;
    if (done) {
      if (stableSince === 0) stableSince = Date.now();
      if (Date.now() - stableSince >= 1500) return true;
    } else {
      stableSince = 0;
    }
    if (svc.proc.exitCode !== null) return false;
    await sleep(250);
  }
  return false;
}

async function undisturbed() {
  await emu.publish("calm", lines, 0, lines.length);
  const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "calm", graph, dir: join(o.work, "calm"),
    extra: ["--mail-rate", "6000", "--mail-concurrency", "4"] });
  await svc.start();
  const ok = await drained(svc, spec.length, spec.length, 120000);
  check(ok, "undisturbed run: every diff record mailed within 120 s");
  if (!ok) console.error(svc.proc.stderrText.slice(-3000));
  svc.proc.kill("SIGTERM");
  const { code } = await svc.proc.done;
  check(code === 0, "undisturbed run: SIGTERM exit 0", code, 0);
  const d = compareKeys(svc.diffs().map(diffKey), spec);
  check(d.lost === 0 && d.duplicated === 0 && d.unexpected === 0, "undisturbed run: diff records equal offline processing", d, "equal");
  const mails = (await graph.get("mails")).map((x) => mailKey(x.request));
  check(mails.length === spec.length && new Set(mails).size === mails.length, "undisturbed run: one mail per diff record",
    mails.length, spec.length);
  await graph.post("reset");
  return { diffs: svc.diffs().map(diffKey), mails };
}

// ---- fault injection ----
const faults = { emulator: {}, emulator_hit: {}, graph_queued: {} };
let injecting = false;
const EMU_FAULTS = [
  ["drop-connections", () => "drop-connections"],
  ["close-connections", () => "close-connections amqp:connection:forced chaos"],
  ["detach-forced", () => "detach * amqp:link:detach-forced chaos"],
  ["detach-server-busy", () => `detach chaos/${rng.int(0, 3)} com.microsoft:server-busy The server is busy.`],
  ["refuse-attach-server-busy", () => `refuse-attach ${rng.int(1, 3)} com.microsoft:server-busy The server is busy.`],
];
const GRAPH_FAULTS = [
  ["429-retry-after", () => ({ status: 429, retry_after: 1 })],
  ["503", () => ({ status: 503 })],
  ["504", () => ({ status: 504 })],
  ["slow-202", () => ({ delay_ms: rng.int(100, 600) })],
  // Accepted at once, answered late (< http_timeout): a kill meanwhile leaves a mail Graph has
  // and the service does not know about -- the duplicate the design allows.
  ["accepted-slow-202", () => ({ record_first: true, delay_ms: rng.int(200, 700) })],
  ["timeout-not-accepted", () => ({ delay_ms: 1800 })], // > http_timeout 1 s: the client gives up
];
async function injector() {
  while (injecting) {
    await sleep(rng.int(200, 900));
    if (!injecting) break;
    if (rng.next() < 0.5) {
      const [name, cmd] = rng.pick(EMU_FAULTS);
      const reply = await emu.ctl(cmd());
      if (!reply.startsWith("ok")) throw new Error(`emulator fault ${name}: ${reply}`);
      faults.emulator[name] = (faults.emulator[name] ?? 0) + 1;
      // What it hit: "ok connections=N" / "ok links=N" (refuse-attach arms the next attaches).
      const hit = reply.match(/(connections|links)=(\d+)/);
      if (hit) faults.emulator_hit[hit[1]] = (faults.emulator_hit[hit[1]] ?? 0) + Number(hit[2]);
    } else {
      const batch = [];
      for (let i = rng.int(1, 3); i > 0; i--) {
        const [name, f] = rng.pick(GRAPH_FAULTS);
        batch.push(f());
        faults.graph_queued[name] = (faults.graph_queued[name] ?? 0) + 1;
      }
      await graph.post("faults", batch);
    }
  }
}

async function chaos(expected) {
  const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "chaos", graph, dir: join(o.work, "chaos"),
    extra: ["--mail-rate", String(o.mailRate), "--mail-concurrency", "4", "--mail-backoff-min", "100ms",
      "--mail-backoff-max", "2s", "--http-timeout", "1s", "--reconnect-backoff-min", "100ms",
      "--reconnect-backoff-max", "1s", "--operation-timeout", "5s", "--partition-merge-wait", "10s",
      "--shutdown-timeout", "5s"] });
  // One chunk per start, cut only where a new scan begins.
  const starts = scanStarts(lines);
  const cuts = [];
  for (let j = 1; j <= o.kills; j++) {
    const c = cutNear(starts, Math.round((j * lines.length) / (o.kills + 1)));
    cuts.push(Math.max(c, cuts.length > 0 ? cuts[cuts.length - 1] : 0));
  }
  const kills = [];
  injecting = true;
  const inj = injector().catch((e) => {
    injecting = false;
    check(false, `fault injection: ${e.message}`);
  });
  let published = 0;
  for (let i = 0; i < o.kills; i++) {
    const to = cuts[i];
    await emu.publish("chaos", lines, published, to);
    published = to;
    const p = await svc.start();
    // One start in eight is killed during start-up (connecting, discovery, first attach).
    const up = rng.next() < 0.125 ? rng.int(30, 250) : rng.int(o.minUp, o.maxUp);
    await sleep(up);
    const exitedEarly = p.exitCode !== null || p.signalCode !== null;
    const tKill = Date.now();
    p.kill("SIGKILL");
    const { signal, code } = await p.done;
    const k = { kill: i + 1, up_ms: up, started: p.startedAt, killed: tKill, outcomes: mailOutcomes(svc.logs()),
      diff_records_so_far: svc.diffs().length };
    if (exitedEarly || signal !== "SIGKILL") {
      k.exited_by_itself = { code, signal };
      check(false, `kill ${i + 1}: the service was still running`, { code, signal }, "running");
      console.error(p.stderrText.slice(-2000));
    }
    kills.push(k);
  }
  injecting = false;
  await inj;
  await emu.ctl("refuse-attach 0");
  await emu.publish("chaos", lines, published, lines.length);
  const tFinal = Date.now();
  await svc.start();
  const ok = await drained(svc, expected.diffs.length, new Set(expected.mails).size, o.drainTimeout * 1000);
  check(ok, `after ${o.kills} kills, the last run delivers everything within ${o.drainTimeout} s`);
  if (!ok) console.error(svc.proc.stderrText.slice(-4000));
  // No partition stalled: all four receive and each is checkpointed up to its last event.
  const ready = await httpGet(svc.metricsPort, "/readyz");
  check(ready.status === 200 && /4 partitions receiving/.test(ready.text), "last run: /readyz ready, 4 partitions",
    ready.text.trim(), "ready: 4 partitions receiving");
  const m = await svc.metrics();
  const lags = [0, 1, 2, 3].map((p) => metric(m, "scanwatch_partition_lag_events", `partition="${p}"`));
  check(lags.every((l) => l === 0), "last run: every partition's lag is 0", lags, [0, 0, 0, 0]);
  svc.proc.kill("SIGTERM");
  const { code } = await svc.proc.done;
  check(code === 0, "last run: SIGTERM exit 0", code, 0);

  // In flight at each kill: the requests that process made (by arrival time between its start
  // and the next start) minus the answers it logged acting on.
  const requests = await graph.get("requests");
  const bounds = kills.map((k) => k.started).concat([tFinal]);
  for (let i = 0; i < kills.length; i++) {
    const mine = requests.filter((r) => r.time >= bounds[i] && r.time < bounds[i + 1]);
    kills[i].requests = mine.length;
    kills[i].in_flight = Math.max(0, mine.length - kills[i].outcomes);
    // The fake Graph's own view: requests it had not answered when the kill was sent.
    kills[i].unanswered_at_kill_graph_view = mine.filter((r) => r.end === null || r.end > kills[i].killed).length;
  }
  const statuses = {};
  for (const r of requests) {
    const s = r.status === null ? "unanswered" : String(r.status);
    statuses[s] = (statuses[s] ?? 0) + 1;
  }
  const mails = (await graph.get("mails")).map((x) => mailKey(x.request));
  const dl = spawnSync(o.scanwatch, ["state", "dead-letter", "--state", join(o.work, "chaos", "state"), "--json"],
    { maxBuffer: 256 << 20 })
    .stdout.toString().split("\n").filter((l) => l).map((l) => JSON.parse(l));
  return { svc, kills, requests: requests.length, statuses, mails, deadLetters: dl };
}

let failed = false;
try {
  await emu.start();
  await graph.start();
  const expected = await undisturbed();
  const c = await chaos(expected);
  const diffs = compareKeys(c.svc.diffs().map(diffKey), expected.diffs);
  const mails = compareKeys(c.mails, expected.mails);
  const inFlight = c.kills.reduce((a, k) => a + k.in_flight, 0);
  const vsSpec = compareKeys(c.svc.diffs().map(diffKey), spec);
  check(diffs.lost === 0, "chaos: no diff record lost", diffs.lost, 0);
  check(diffs.duplicated === 0, "chaos: no diff record duplicated", diffs.duplicated, 0);
  check(diffs.unexpected === 0 && vsSpec.lost === 0 && vsSpec.unexpected === 0,
    "chaos: diff records equal the undisturbed run and offline processing", { vsUndisturbed: diffs.unexpected, vsSpec }, 0);
  check(mails.lost === 0, "chaos: no mail lost", mails.lost, 0);
  check(mails.unexpected === 0, "chaos: no unexpected mail", mails.unexpected, 0);
  check(mails.duplicated <= inFlight, "chaos: duplicated mails <= mails in flight at the kills", mails.duplicated, `<= ${inFlight}`);
  const mailDead = c.deadLetters.filter((d) => d.kind !== "event").length;
  check(mailDead === 0, "chaos: nothing but bad events in the dead letter", c.deadLetters.map((d) => d.kind), "event only");
  const badEvents = c.deadLetters.filter((d) => d.kind === "event").length;
  const badInStream = spawnSync(o.scanwatch, ["decode", streamPath], { stdio: ["ignore", "ignore", "pipe"] }).stderr.toString().match(/bad: (\d+)/);
  check(badInStream && badEvents === Number(badInStream[1]), "chaos: every bad event dead-lettered once", badEvents,
    badInStream && Number(badInStream[1]));
  Object.assign(report, {
    kills: c.kills.length,
    diff_records: { expected: expected.diffs.length, got: diffs.total, lost: diffs.lost, duplicated: diffs.duplicated, unexpected: diffs.unexpected },
    mails: { expected: expected.mails.length, got: mails.total, distinct: mails.distinct, lost: mails.lost, duplicated: mails.duplicated, unexpected: mails.unexpected },
    in_flight_at_kills: inFlight,
    in_flight_graph_view: c.kills.reduce((a, k) => a + k.unanswered_at_kill_graph_view, 0),
    faults: { emulator: faults.emulator, emulator_hit: faults.emulator_hit, graph_queued: faults.graph_queued,
      graph_answers: c.statuses, sendmail_requests: c.requests },
    dead_letters: { events: badEvents, other: mailDead },
    per_kill: c.kills.map(({ kill, up_ms, requests, outcomes, in_flight, unanswered_at_kill_graph_view, diff_records_so_far }) =>
      ({ kill, up_ms, requests, outcomes, in_flight, unanswered_at_kill_graph_view, diff_records_so_far })),
  });
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack ?? e}`);
} finally {
  injecting = false;
  graph.stop();
  await emu.stop();
}
report.seconds = Math.round((Date.now() - t0) / 1000);
report.passed = !failed && checks.failures === 0;
report.checks = checks.results.map(({ what, ok }) => ({ what, ok }));
const summary = [
  `scanwatch chaos run, seed ${o.seed}: ${report.kills ?? 0} SIGKILLs, ${report.seconds} s`,
  `  stream: ${lines.length} events, ${spec.length} diff records expected`,
  report.diff_records ? `  diff records: ${report.diff_records.got} written, lost ${report.diff_records.lost}, duplicated ${report.diff_records.duplicated}, unexpected ${report.diff_records.unexpected}` : "",
  report.mails ? `  mails: ${report.mails.got} accepted by Graph (${report.mails.distinct} distinct of ${report.mails.expected}), lost ${report.mails.lost}, duplicated ${report.mails.duplicated}, unexpected ${report.mails.unexpected}` : "",
  report.mails ? `  mails in flight at the kills: ${report.in_flight_at_kills} (fake Graph's view, unanswered at the kill: ${report.in_flight_graph_view})` : "",
  report.faults ? `  emulator faults: ${JSON.stringify(report.faults.emulator)}; hit ${JSON.stringify(report.faults.emulator_hit)}` : "",
  report.faults ? `  Graph faults queued: ${JSON.stringify(report.faults.graph_queued)}; answers: ${JSON.stringify(report.faults.graph_answers)}` : "",
  `  result: ${report.passed ? "PASS" : "FAIL"}`,
].filter((l) => l).join("\n");
console.log(summary);
if (o.report) writeFileSync(o.report, `${JSON.stringify(report, null, 2)}\n`);
if (o.summary) writeFileSync(o.summary, `${summary}\n`);
process.exit(report.passed ? 0 : 1);
