// Long outages (issue 9, item 2), end to end with `scanwatch run`, the emulator and the fake Graph:
//   node tests/chaos/outage.mjs --scanwatch P --emulator P --gen P --fake-graph P --work DIR
//        --scenario graph|hub|reconnect|detach [--outage-seconds N] [--report FILE.json]
//
// graph: Microsoft Graph (token endpoint and sendMail) answers 503 for the whole outage while
//   the stream arrives and every diff record becomes a pending mail (tokens fail in the first
//   half, sendMail in the second, with Retry-After). Time is compressed, not simulated:
//   mail_backoff is 20..100 ms instead of 2 s..5 min, so a 40 s outage makes hundreds of
//   attempts, where an hour at the defaults makes about 18. Checks:
//   nothing is accepted during the outage, the mails stay pending (none dead-lettered), RSS
//   stays flat while they pile up, and once Graph is back every mail is delivered exactly once.
// hub: the Event Hub is unreachable when the service starts (nothing listens on its port) and
//   for --outage-seconds (default 65, past the 60 s after which /healthz would call the loop
//   stalled); then it comes up; later it dies (SIGKILL) mid-run and comes back on
//   the same port holding the same events. Reconnect backoff is 200 ms..2 s instead of
//   1 s..60 s. Checks: the service keeps running (no restart), /healthz stays 200, /readyz is
//   503 with the reason (the connection error and since when) while the hub is away and 200
//   once every partition receives again, the logs name the problem, and the diff records and
//   mails equal offline processing, none twice.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  Checks, Emulator, FakeGraph, Service, compareKeys, cutNear, diffKey, freePort, generate, httpGet, mailKey, metric,
  offlineDiffs, parseArgs, scanStarts, sleep,
} from "./harness.mjs";

const o = parseArgs(process.argv.slice(2), {
  scanwatch: "", emulator: "", gen: "", fakeGraph: "", work: "", scenario: "", outageSeconds: 0, report: "",
  seed: 11, images: 40, rescans: 3,
});
for (const k of ["scanwatch", "emulator", "gen", "fakeGraph", "work", "scenario"]) {
  if (!o[k]) {
    console.error(`usage: outage.mjs --scanwatch P --emulator P --gen P --fake-graph P --work DIR --scenario graph|hub|reconnect|detach; missing --${k}`);
    process.exit(2);
  }
}
const checks = new Checks();
const check = checks.check.bind(checks);
const t0 = Date.now();
rmSync(o.work, { recursive: true, force: true });
mkdirSync(o.work, { recursive: true });
const streamPath = join(o.work, "stream.ndjson");
const lines = generate(o.gen, streamPath, { seed: o.seed, images: o.images, rescans: o.rescans });
const spec = offlineDiffs(o.scanwatch, streamPath, join(o.work, "offline"), "2s");
console.log(`stream: ${lines.length} events; offline processing: ${spec.length} diff records`);
const report = { scenario: o.scenario, events: lines.length, expected_diff_records: spec.length };
const graph = new FakeGraph(o.fakeGraph);

// Waits until pred() holds (polling), or the timeout.
async function until(pred, ms, step = 200) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await sleep(step);
  }
  return pred();
}

async function delivered(svc, ms) {
  return until(async () => {
    const m = await svc.metrics();
    const mails = await graph.get("mails");
    return svc.diffs().length >= spec.length && new Set(mails.map((x) => mailKey(x.request))).size >= spec.length &&
      metric(m, "scanwatch_outbox_depth") === 0 && metric(m, "scanwatch_mails", 'state="pending"') === 0;
  }, ms, 300);
}

async function finalChecks(svc, what) {
  await sleep(1000); // anything extra would show up now
  const d = compareKeys(svc.diffs().map(diffKey), spec);
  check(d.lost === 0 && d.duplicated === 0 && d.unexpected === 0, `${what}: diff records equal offline processing, none twice`, d, "equal");
  const mails = (await graph.get("mails")).map((x) => mailKey(x.request));
  const distinct = new Set(mails).size;
  check(distinct === spec.length, `${what}: every diff record mailed`, distinct, spec.length);
  check(mails.length === distinct, `${what}: no mail twice`, mails.length - distinct, 0);
  report.diff_records = { got: d.total, lost: d.lost, duplicated: d.duplicated };
  report.mails = { accepted: mails.length, distinct };
}

// Waits until the service has written diff records and no new one for 4 s (caught up, the
// windows of what it received closed).
async function diffsSettled(svc) {
  let last = -1;
  let stableSince = Date.now();
  await until(async () => {
    const n = svc.diffs().length;
    if (n !== last) {
      last = n;
      stableSince = Date.now();
    }
    return n > 0 && Date.now() - stableSince > 4000;
  }, 30000);
}

async function stopCleanly(svc) {
  svc.proc.kill("SIGTERM");
  const { code } = await svc.proc.done;
  check(code === 0, "SIGTERM: exit 0", code, 0);
}

async function graphOutage() {
  const seconds = o.outageSeconds || 40;
  const emu = new Emulator(o.emulator, ["export:4"]);
  await emu.start();
  try {
    await graph.post("config", { outage: { status: 503, token: true } });
    const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "export", graph, dir: join(o.work, "svc"),
      extra: ["--mail-rate", "6000", "--mail-concurrency", "4", "--mail-backoff-min", "20ms", "--mail-backoff-max",
        "100ms", "--http-timeout", "2s", "--log-level", "warn"] });
    await svc.start();
    const outageStart = Date.now();
    await emu.publish("export", lines, 0, lines.length);
    // Every diff record is written (outbox) and turned into a pending mail while Graph is down.
    const rss = [];
    let tokenDownUntil = outageStart + (seconds * 1000) / 2;
    while (Date.now() - outageStart < seconds * 1000) {
      await sleep(1000);
      if (tokenDownUntil !== 0 && Date.now() >= tokenDownUntil) {
        // Second half: tokens are issued again, sendMail still fails (Graph itself down).
        await graph.post("config", { outage: { status: 503, retry_after: 1 } });
        tokenDownUntil = 0;
      }
      rss.push({ t: Math.round((Date.now() - outageStart) / 1000), kib: svc.rssKiB(), diffs: svc.diffs().length });
    }
    const m = await svc.metrics();
    const stats = await graph.get("stats");
    const tokenReqs = (await graph.get("token-requests")).length;
    check(stats.mails === 0, "Graph down: nothing accepted", stats.mails, 0);
    check(svc.diffs().length === spec.length, "Graph down: every diff record still written", svc.diffs().length, spec.length);
    // Mails are rendered one queue ahead of sending (64): the rest waits in the outbox as diff records.
    const depth = metric(m, "scanwatch_outbox_depth");
    const pending = metric(m, "scanwatch_mails", 'state="pending"');
    check(depth > 0 && depth < spec.length, "Graph down: the backlog waits in the outbox, not rendered",
      depth, `1..${spec.length - 1}`);
    check(pending > 0 && pending <= 64, "Graph down: at most one queue of mails rendered and pending", pending, "1..64");
    check(metric(m, "scanwatch_mails", 'state="dead"') === 0, "Graph down: no mail dead-lettered", metric(m, "scanwatch_mails", 'state="dead"'), 0);
    const attempts = stats.requests;
    // Second half only (tokens fail first): >= 4/s over 20 s, some hundred times the ~18 attempts
    // an hour makes at the default backoff (2 s doubling to 5 min).
    check(attempts >= seconds * 2, "Graph down: sendMail kept being retried", attempts, `>= ${seconds * 2}`);
    check(tokenReqs >= seconds * 2, "Graph down: token requests kept being retried", tokenReqs, `>= ${seconds * 2}`);
    check(svc.proc.exitCode === null, "Graph down: the service keeps running");
    // Memory: after the stream is in (first quarter), RSS stays flat while retries go on.
    const settled = rss.filter((r) => r.t >= seconds / 4 && r.kib !== undefined);
    const base = settled[0]?.kib ?? 0;
    const peak = Math.max(...settled.map((r) => r.kib));
    // An AddressSanitizer build (CI runs the suite under ASan too) keeps freed memory in its
    // quarantine (256 MiB by default), so its RSS grows whatever the service does: the bound is
    // checked against the normal build only.
    if (readFileSync(o.scanwatch).includes("__asan_init")) {
      console.log(`skip: Graph down: RSS bound not checked in an ASan build (${base} -> ${peak} KiB)`);
    } else {
      check(peak - base <= 8 * 1024, "Graph down: RSS grows by <= 8 MiB over the rest of the outage", `${base} -> ${peak} KiB`, "<= +8192 KiB");
    }
    report.outage_seconds = seconds;
    report.sendmail_attempts_during_outage = attempts;
    report.token_requests_during_outage = tokenReqs;
    report.rss_kib = { after_quarter: base, peak, samples: rss };
    await graph.post("config", { outage: null });
    const tBack = Date.now();
    const ok = await delivered(svc, 60000);
    check(ok, "Graph back: every mail delivered within 60 s", ok, true);
    report.drain_seconds = Math.round((Date.now() - tBack) / 100) / 10;
    await finalChecks(svc, "after the Graph outage");
    await stopCleanly(svc);
  } finally {
    await emu.stop();
  }
}

async function hubOutage() {
  // Longer than the 60 s after which /healthz reports a stalled loop: waiting is not stalling.
  const seconds = o.outageSeconds || 65;
  const port = await freePort();
  const emu = new Emulator(o.emulator, ["export:4"], { port });
  emu.port = port; // the service is configured before anything listens there
  const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "export", graph, dir: join(o.work, "svc"),
    extra: ["--mail-rate", "6000", "--mail-concurrency", "4", "--reconnect-backoff-min", "200ms",
      "--reconnect-backoff-max", "2s", "--operation-timeout", "5s"] });
  const p = await svc.start();
  try {
    // 1. Nothing listens: backoff, not ready (with the reason), healthy, still running.
    // Meanwhile a second instance is stopped while it waits: SIGTERM is a clean, quick exit.
    const other = new Service({ scanwatch: o.scanwatch, emu, hub: "export", graph, dir: join(o.work, "sigterm"),
      extra: ["--reconnect-backoff-min", "200ms", "--reconnect-backoff-max", "2s"] });
    const op = await other.start();
    await sleep(2000);
    const tTerm = Date.now();
    op.kill("SIGTERM");
    const stopped = await op.done;
    check(stopped.code === 0 && Date.now() - tTerm < 3000, "SIGTERM while waiting for the hub: exit 0 within 3 s",
      { code: stopped.code, ms: Date.now() - tTerm }, { code: 0, ms: "< 3000" });
    await sleep(seconds * 1000 - 2000);
    const health = await httpGet(svc.metricsPort, "/healthz");
    const ready = await httpGet(svc.metricsPort, "/readyz");
    check(p.exitCode === null, `hub unreachable at start for ${seconds} s: the service keeps running`);
    check(health.status === 200, "hub unreachable: /healthz 200", health.status, 200);
    check(ready.status === 503 && /not connected to the event hub yet/.test(ready.text) && /refused/i.test(ready.text),
      "hub unreachable: /readyz 503 naming the connection error", `${ready.status} ${ready.text.trim()}`, "503 ... refused");
    report.readyz_while_unreachable = ready.text.trim();
    const logs = svc.logs();
    const attempts = logs.filter((l) => l.msg === "amqp error" && /refused/i.test(l.error ?? "")).length;
    const delays = logs.filter((l) => l.msg === "amqp reconnect scheduled").map((l) => l.delay_ms);
    check(attempts >= 3 && attempts <= seconds * 2, "hub unreachable: each refused connection logged, with backoff", attempts, `3..${seconds * 5}`);
    check(delays.length > 2 && Math.max(...delays) >= 1000 && Math.max(...delays) <= 2000,
      "hub unreachable: reconnect delays grow to reconnect_backoff_max", delays, "up to 2000 ms");
    report.connection_attempts_while_unreachable = attempts;
    report.reconnect_delays_ms = delays;
    // 2. The hub comes up with the first half of the stream: recovery without restart.
    const half = cutNear(scanStarts(lines), lines.length / 2);
    const firstHalf = join(o.work, "first-half.ndjson");
    writeFileSync(firstHalf, `${lines.slice(0, half).join("\n")}\n`);
    const tUp = Date.now();
    await emu.start({ load: firstHalf });
    check(emu.port === port, "the hub listens on the configured port", emu.port, port);
    const recovered = await until(async () => (await httpGet(svc.metricsPort, "/readyz")).status === 200, 10000);
    check(recovered, "hub up: /readyz 200 within 10 s (reconnect_backoff_max 2 s)", recovered, true);
    report.seconds_to_ready_after_hub_up = Math.round((Date.now() - tUp) / 100) / 10;
    check(/partitions assigned/.test(p.stderrText), "hub up: partitions discovered by the same process");
    // The first half processed and its windows closed (the reloaded hub below gives events new
    // enqueued times, which Event Hubs would not: a window open across it would be cut).
    await diffsSettled(svc);
    // 3. The hub dies mid-run and comes back on the same port with the same events.
    await emu.stop("SIGKILL");
    await sleep(3000);
    const down = await httpGet(svc.metricsPort, "/readyz");
    check(down.status === 503 && /not connected to the event hub since .* last error: /.test(down.text),
      "hub down mid-run: /readyz 503 with since when and the last error", `${down.status} ${down.text.trim()}`, "503 since ... last error");
    report.readyz_while_down = down.text.trim();
    await sleep(5000);
    await emu.start({ load: firstHalf });
    await emu.publish("export", lines, half, lines.length);
    const back = await until(async () => (await httpGet(svc.metricsPort, "/readyz")).status === 200, 10000);
    check(back, "hub back: /readyz 200 again within 10 s", back, true);
    check(await delivered(svc, 60000), "hub back: every diff record processed and mailed within 60 s");
    check(p.exitCode === null && svc.runs === 1, "one process all along (recovered without restart)");
    await finalChecks(svc, "after the hub outages");
    await stopCleanly(svc);
  } finally {
    await emu.stop();
  }
}

// reconnect: the hub connection drops while the service is caught up; during the outage one
// scan is published, and 2.5 s later (> scan_quiet) the next ones; on reconnect only one
// partition attaches at once (the others are refused as server-busy and back off). The lag
// info read before the outage says every partition is caught up: the merge must not believe
// it (else the one partition's later events close the scan's window before the others'
// records of it arrive, and the diff is wrong). Checks: diff records equal offline
// processing.
async function reconnectMerge() {
  const emu = new Emulator(o.emulator, ["export:4"]);
  await emu.start();
  try {
    const starts = scanStarts(lines);
    const [a, b] = [starts[Math.floor(starts.length / 2)], starts[Math.floor(starts.length / 2) + 1]];
    const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "export", graph, dir: join(o.work, "svc"),
      extra: ["--mail-rate", "6000", "--mail-concurrency", "4", "--reconnect-backoff-min", "3s",
        "--reconnect-backoff-max", "4s", "--lag-poll-interval", "5s", "--partition-merge-wait", "15s"] });
    await emu.publish("export", lines, 0, a);
    await svc.start();
    // Caught up, first half's windows closed (scan_quiet 2 s of quiet), lag info read.
    await diffsSettled(svc);
    check((await emu.ctl("drop-connections")).startsWith("ok"), "connection dropped");
    check((await emu.ctl("refuse-attach 3 com.microsoft:server-busy The server is busy.")).startsWith("ok"),
      "the next 3 attaches will be refused");
    await emu.publish("export", lines, a, b);
    await sleep(2500);
    await emu.publish("export", lines, b, lines.length);
    check(await delivered(svc, 60000), "everything processed and mailed within 60 s");
    await finalChecks(svc, "after the reconnect");
    await stopCleanly(svc);
  } finally {
    await emu.stop();
  }
}

// detach: one partition's receiver link is detached by the hub (com.microsoft:server-busy) while
// the service is caught up, and its re-attaches are refused (server-busy) for a few seconds while
// the rest of the stream arrives. Checks: /readyz goes 503 naming the partition and the detach
// condition, scanwatch_partition_attached{partition="0"} is 0 (the others 1), then /readyz is 200
// again after the re-attach, and the diff records and mails equal offline processing, none twice
// (partition_merge_wait 15 s outlasts the detach: docs/chaos.md, the merge's documented bound).
async function partitionDetach() {
  const emu = new Emulator(o.emulator, ["export:4"]);
  await emu.start();
  try {
    const half = cutNear(scanStarts(lines), lines.length / 2);
    const svc = new Service({ scanwatch: o.scanwatch, emu, hub: "export", graph, dir: join(o.work, "svc"),
      extra: ["--mail-rate", "6000", "--mail-concurrency", "4", "--reconnect-backoff-min", "1s",
        "--reconnect-backoff-max", "2s", "--partition-merge-wait", "15s"] });
    await emu.publish("export", lines, 0, half);
    await svc.start();
    const ready = await until(async () => (await httpGet(svc.metricsPort, "/readyz")).status === 200, 15000);
    check(ready, "start: /readyz 200", ready, true);
    let m0 = "";
    await until(async () => {
      m0 = await svc.metrics();
      return metric(m0, "scanwatch_partition_attached", 'partition="0"') !== undefined;
    }, 5000);
    check(metric(m0, "scanwatch_partition_attached", 'partition="0"') === 1, "start: partition 0 attached (gauge 1)",
      metric(m0, "scanwatch_partition_attached", 'partition="0"'), 1);
    // 4 refused re-attaches at 1..2 s backoff: partition 0 stays detached for several seconds.
    check((await emu.ctl("refuse-attach 4 com.microsoft:server-busy The server is busy.")).startsWith("ok"),
      "the next 4 attaches will be refused");
    const det = await emu.ctl("detach export/0 com.microsoft:server-busy The server is busy.");
    check(/^ok links=[1-9]/.test(det), "partition 0's receiver link detached", det, "ok links=1");
    const tDetach = Date.now();
    await emu.publish("export", lines, half, lines.length);
    let down = { status: 0, text: "" };
    const notReady = await until(async () => {
      down = await httpGet(svc.metricsPort, "/readyz");
      return down.status === 503;
    }, 3000, 100);
    check(notReady && /^partition 0 detached since .*com\.microsoft:server-busy/m.test(down.text) &&
      !/^partition [123] /m.test(down.text),
      "detached: /readyz 503 naming partition 0 and the detach condition (only it)", `${down.status} ${down.text.trim()}`,
      "503 partition 0 detached ... com.microsoft:server-busy");
    report.readyz_while_detached = down.text.trim();
    await sleep(1500); // a metrics pass
    const m1 = await svc.metrics();
    const gauges = ["0", "1", "2", "3"].map((id) => metric(m1, "scanwatch_partition_attached", `partition="${id}"`));
    check(gauges.join() === "0,1,1,1", "detached: scanwatch_partition_attached 0 for partition 0 only", gauges, [0, 1, 1, 1]);
    const still = await httpGet(svc.metricsPort, "/readyz");
    check(still.status === 503, "refused re-attaches: still not ready", `${still.status} ${still.text.trim()}`, 503);
    const back = await until(async () => (await httpGet(svc.metricsPort, "/readyz")).status === 200, 20000);
    check(back, "re-attached: /readyz 200 again", back, true);
    report.seconds_not_ready = Math.round((Date.now() - tDetach) / 100) / 10;
    const refused = svc.logs().filter((l) => l.msg === "event hub error, retrying" && l.partition === "0" &&
      /server-busy/.test(l.error ?? "")).length;
    check(refused >= 5, "the detach and each refused re-attach logged for partition 0", refused, ">= 5");
    await sleep(1500);
    const m2 = await svc.metrics();
    check(metric(m2, "scanwatch_partition_attached", 'partition="0"') === 1, "re-attached: gauge 1 again",
      metric(m2, "scanwatch_partition_attached", 'partition="0"'), 1);
    check(await delivered(svc, 30000), "everything processed and mailed within 30 s");
    check(svc.runs === 1 && svc.proc.exitCode === null, "one process all along");
    await finalChecks(svc, "after the partition detach");
    await stopCleanly(svc);
  } finally {
    await emu.stop();
  }
}

let failed = false;
try {
  await graph.start();
  if (o.scenario === "graph") await graphOutage();
  else if (o.scenario === "hub") await hubOutage();
  else if (o.scenario === "reconnect") await reconnectMerge();
  else if (o.scenario === "detach") await partitionDetach();
  else throw new Error(`unknown scenario ${o.scenario} (graph, hub, reconnect, detach)`);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack ?? e}`);
} finally {
  graph.stop();
}
report.seconds = Math.round((Date.now() - t0) / 1000);
report.passed = !failed && checks.failures === 0;
report.checks = checks.results.map(({ what, ok, got }) => ({ what, ok, got }));
if (o.report) writeFileSync(o.report, `${JSON.stringify(report, null, 2)}\n`);
console.log(`${o.scenario} outage: ${report.passed ? "all checks passed" : `${checks.failures} check(s) failed`} (${report.seconds} s)`);
process.exit(report.passed ? 0 : 1);
