// End-to-end benchmark driver (docs/benchmarks.md, section "e2e"); bench/e2e/run wraps it.
//
//   node bench/e2e/run.mjs --build DIR [--images N] [--findings-per-image 10] [--rescans 1]
//        [--churn 0.1] [--partitions 4] [--rounds 5] [--modes bare,e2e,parse,rocksdb,js] [--js-events N]
//        [--mail-mode per_image|digest] [--live-rate EV_PER_S --live-seconds S]
//        [--timed] [--interval 1d] [--work DIR] [--out FILE] [--label TEXT]
//
// --timed: sw-gen --emit-enqueued writes each event with its enqueued time (its scan time
// + 1-5 s) and the emulator loads it with --load-format timed, so enqueued times follow the
// scans (daily rescans with --interval 1d) and the service's event-time window close rule
// fires as it would on a real export. Without it every event is enqueued at preload time.
// The emulator indexes the stream file and reads bodies on delivery, so streams of 10M+
// events (~30 GB in --work on disk) need RAM for the index only (~32 bytes an event).
// sw-gen and emulator start-up times (and the emulator's RSS) are reported separately
// (gen_seconds, emulator_load_seconds, emulator_rss_kb in every e2e row).
//
// One generated Defender stream (sw-gen, MDVM-heavy: --mix 1,18,1, one record of ~3 KB per
// event) is preloaded into one scanwatch-emulator (hub eh1, round-robin over the
// partitions). Then, per round and in this order, each side reads the whole stream:
//   bare    sw-bench-receive --mode bare: a bare proton receiver, accepts and settles (floor a)
//   e2e     `scanwatch run` (dir: mail sink, fresh state dir, metrics on a loopback port)
//           until /metrics counts every event processed; CPU and peak RSS read from /proc
//   parse   sw-bench-e2e-floor --mode parse: cJSON parse + delete of the same bodies (floor b)
//   rocksdb sw-bench-e2e-floor --mode rocksdb: one Put per finding of the key and finding JSON
//           the engine stores, synced WriteBatch per 1000 (floor c)
//   js      @azure/event-hubs subscribe doing JSON.parse of each body (peer d)
// With --live-rate, a last phase measures latency: a fresh service, caught up on the
// preloaded stream, then a producer (the SDK) publishes a second stream at a fixed rate;
// the service's processing latency histogram (enqueue → processed) over that phase gives
// p50/p99.
// Every measurement is one JSON line on stdout (and in --out); a summary line
// {"summary":...} with medians, min, max and ratios ends the output.
import { spawn, spawnSync } from "node:child_process";
import { openSync, readSync, closeSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir, loadavg } from "node:os";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const args = process.argv.slice(2);
const argOf = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const num = (n, d) => {
  const v = Number(argOf(n, d));
  if (!Number.isFinite(v) || v < 0) {
    console.error(`${n}: '${argOf(n, d)}' is not a non-negative number`);
    process.exit(2);
  }
  return v;
};
const BUILD = resolve(argOf("--build", process.env.SW_BUILD_DIR ?? join(root, "build")));
const IMAGES = num("--images", 1000);
const PER_IMAGE = num("--findings-per-image", 10);
const RESCANS = num("--rescans", 1);
const CHURN = num("--churn", 0.1);
const PARTS = num("--partitions", 4);
const ROUNDS = num("--rounds", 5);
const MODES = argOf("--modes", "bare,e2e,parse,rocksdb,js").split(",").filter((m) => m);
const JS_EVENTS = num("--js-events", 0); // 0 = the whole stream
const MAIL_MODE = argOf("--mail-mode", "per_image");
const LIVE_RATE = num("--live-rate", 0);
const LIVE_SECONDS = num("--live-seconds", 20);
const LABEL = argOf("--label", "");
const TIMED = args.includes("--timed");
const INTERVAL = argOf("--interval", "1d");
// extra settings for `scanwatch run`, e.g. --svc "--max-unsettled 2000"
const SVC_EXTRA = (argOf("--svc", "") ?? "").split(" ").filter((a) => a);
const OUT = argOf("--out");
const WORK = resolve(argOf("--work", join(tmpdir(), `sw-e2e-${process.pid}`)));
const SDK_DIR = join(root, "tests", "sdk");

const bins = {
  scanwatch: resolve(argOf("--scanwatch", join(BUILD, "consumer", "scanwatch"))), // e.g. a before/after build
  emulator: join(BUILD, "emulator", "scanwatch-emulator"),
  gen: join(BUILD, "tests", "gen", "sw-gen"),
  receive: join(BUILD, "bench", "receive", "sw-bench-receive"),
  floor: join(BUILD, "bench", "e2e", "sw-bench-e2e-floor"),
};
for (const [name, p] of Object.entries(bins)) {
  if (!existsSync(p)) {
    console.error(`missing ${name} (${p}): build first (scripts/build)`);
    process.exit(1);
  }
}
if (MODES.includes("js") && !existsSync(join(SDK_DIR, "node_modules", "@azure", "event-hubs"))) {
  console.error("missing @azure/event-hubs: (cd tests/sdk && npm ci)");
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const emit = (o) => {
  const line = JSON.stringify(o);
  console.log(line);
  if (OUT) appendFileSync(OUT, line + "\n");
};
const note = (s) => console.error(`# ${s}`);

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

// ---- processes ----
const children = new Set();
function cleanup() {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}
function track(p) {
  children.add(p);
  p.done = new Promise((r) => p.on("exit", (code, signal) => {
    children.delete(p);
    r({ code, signal });
  }));
  return p;
}
// Runs a command to completion; returns its last stdout line parsed as JSON.
async function runJson(cmd, argv, what) {
  const p = track(spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] }));
  let out = "", err = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (err += d));
  const { code } = await p.done;
  const last = out.trim().split("\n").pop();
  if (code !== 0 || !last) throw new Error(`${what} failed (${code}): ${err.slice(-2000)}`);
  return JSON.parse(last);
}
async function freePort() {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}
// /proc/<pid>/stat: utime + stime (clock ticks, 100 Hz here) and status VmHWM/VmRSS.
function procCpu(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}
function procMem(pid) {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number((s.match(new RegExp(`${k}:\\s+(\\d+)`)) ?? [0, 0])[1]);
  return { hwm_kb: kb("VmHWM"), rss_kb: kb("VmRSS") };
}

// ---- the stream ----
const streamPath = join(WORK, TIMED ? "stream.tsv" : "stream.ndjson");
// timed: lines are "<enqueued time>\t<body>"; the live phase always sends plain bodies
function generate(path, images, seed, start, timed = false) {
  const argv = ["--seed", String(seed), "--images", String(images), "--findings", String(PER_IMAGE),
    "--rescans", String(RESCANS), "--churn", String(CHURN), "--mix", "1,18,1", "--casing", "mixed",
    "--interval", INTERVAL, "--out", path];
  if (start) argv.push("--start", start);
  if (timed) argv.push("--emit-enqueued");
  const r = spawnSync(bins.gen, argv);
  if (r.status !== 0) throw new Error(`sw-gen: ${r.stderr}`);
  const st = statSync(path);
  // one line per event; counted in chunks (streams of 1M+ events exceed 2 GiB); bytes are
  // the bodies' (without the newline and a timed line's "<time>\t" prefix)
  let lines = 0, prefix = 0, first = true;
  const fd = openSync(path, "r");
  const chunk = Buffer.alloc(1 << 22);
  for (let got; (got = readSync(fd, chunk, 0, chunk.length, null)) > 0;) {
    if (first && timed) {
      const tab = chunk.indexOf(9);
      if (tab < 0 || tab > got) throw new Error(`sw-gen --emit-enqueued: no TAB in ${path}`);
      prefix = tab + 1; // sw-gen writes every time with the same width
    }
    first = false;
    // indexOf is a native scan: a JS byte loop over a 30 GB stream takes minutes
    for (let i = chunk.indexOf(10, 0); i >= 0 && i < got; i = chunk.indexOf(10, i + 1)) lines++;
  }
  closeSync(fd);
  return { events: lines, bytes: st.size - lines * (1 + prefix) };
}
const t0gen = Date.now();
const stream = generate(streamPath, IMAGES, 1, undefined, TIMED);
const GEN_SECONDS = (Date.now() - t0gen) / 1000;
note(`stream: ${stream.events} events, ${(stream.bytes / 1e6).toFixed(1)} MB, ${IMAGES} images ` +
  `(generated${TIMED ? " with enqueued times" : ""} in ${GEN_SECONDS.toFixed(1)} s)`);
// The e2e wait scales with the stream (10M events at a few thousand/s must not time out).
const E2E_TIMEOUT_MS = Math.max(3600, stream.events / 1000) * 1000;

// ---- the emulator ----
let emu, emuPort, emuLoad = {};
async function startEmulator() {
  const t0 = Date.now();
  emu = track(spawn(bins.emulator, ["--port", "0", "--no-control-stdin", "--no-auth", "--hub", `eh1:${PARTS}`,
    "--retain-count", "0", "--retain-bytes", "0", "--log-level", "error", "--load", streamPath,
    "--load-format", TIMED ? "timed" : "plain"],
  { stdio: ["ignore", "pipe", "inherit"] }));
  emuPort = await new Promise((res, rej) => {
    let buf = "";
    emu.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/ready port=(\d+)/);
      if (m) res(Number(m[1]));
    });
    emu.done.then(({ code }) => rej(new Error(`emulator exited ${code}`)));
    // indexing reads the whole file once: ~30 GB does not fit in the page cache here
    setTimeout(() => rej(new Error("emulator did not start in 3600 s")), 3600000);
  });
  emuLoad = { gen_seconds: +GEN_SECONDS.toFixed(1), emulator_load_seconds: +((Date.now() - t0) / 1000).toFixed(1),
    emulator_rss_kb: procMem(emu.pid).hwm_kb, timed: TIMED };
  note(`emulator on ${emuPort}, preloaded in ${emuLoad.emulator_load_seconds} s, ` +
    `peak RSS ${(emuLoad.emulator_rss_kb / 1024).toFixed(0)} MiB`);
}
const connStr = () => `Endpoint=sb://127.0.0.1:${emuPort};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;

// ---- the service ----
async function metrics(port) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  return r.text();
}
function sumMetric(text, name) {
  let s = 0;
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm");
  for (const m of text.matchAll(re)) s += Number(m[1]);
  return s;
}
function histogram(text, name) {
  const b = [];
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, "gm");
  for (const m of text.matchAll(re)) b.push([m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2])]);
  return b;
}
// Percentile from cumulative buckets, linear inside the bucket (Prometheus' histogram_quantile).
function quantile(buckets, q) {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1][1];
  if (total === 0) return null;
  const rank = q * total;
  let prevLe = 0, prevC = 0;
  for (const [le, c] of buckets) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevC) / Math.max(c - prevC, 1));
    }
    prevLe = le;
    prevC = c;
  }
  return prevLe;
}
function startService(dir, port, extra = []) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const argv = ["run", "--connection-string", connStr(), "--eventhub", "eh1", "--state-dir", join(dir, "state"),
    "--mail-sink", `dir:${join(dir, "mail")}`, "--mail-to", "secops@contoso.example", "--mail-mode", MAIL_MODE,
    "--metrics-port", String(port), "--metrics-bind", "127.0.0.1", "--progress-interval", "0",
    "--log-level", "warn", ...SVC_EXTRA, ...extra];
  const p = track(spawn(bins.scanwatch, argv, { stdio: ["ignore", "ignore", "pipe"] }));
  p.stderrText = "";
  p.stderr.on("data", (d) => {
    p.stderrText = (p.stderrText + d).slice(-20000);
  });
  return p;
}
async function waitEvents(p, port, want, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (p.exitCode !== null) throw new Error(`scanwatch exited ${p.exitCode}: ${p.stderrText.slice(-2000)}`);
    try {
      const text = await metrics(port);
      if (sumMetric(text, "scanwatch_events_total") >= want) return text;
    } catch {}
    await sleep(50);
  }
  throw new Error(`scanwatch did not process ${want} events in ${timeoutMs / 1000} s: ${p.stderrText.slice(-2000)}`);
}
async function stopService(p) {
  const t0 = Date.now();
  p.kill("SIGTERM");
  const { code } = await p.done;
  if (code !== 0) throw new Error(`scanwatch exit ${code} on SIGTERM: ${p.stderrText.slice(-2000)}`);
  return (Date.now() - t0) / 1000;
}
function dirBytes(d) {
  let s = 0;
  if (!existsSync(d)) return 0;
  for (const f of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, f.name);
    s += f.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return s;
}

async function runE2e(round) {
  const dir = join(WORK, "svc");
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const p = startService(dir, port);
  const text = await waitEvents(p, port, stream.events, E2E_TIMEOUT_MS);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = procCpu(p.pid);
  const mem = procMem(p.pid);
  const findings = sumMetric(text, "scanwatch_findings_total");
  const lat = histogram(text, "scanwatch_processing_latency_seconds");
  // Window and diff counters are published after each commit: read them once more (timed
  // runs only, so that the other phases measure what they did before).
  let counters = text;
  if (TIMED) {
    await sleep(1500);
    counters = await metrics(port);
  }
  const shutdown = await stopService(p);
  const r = {
    mode: "e2e", round, events: stream.events, findings, bytes: stream.bytes, seconds: +secs.toFixed(3),
    events_per_s: Math.round(stream.events / secs), findings_per_s: Math.round(findings / secs),
    mb_per_s: +(stream.bytes / 1e6 / secs).toFixed(1), cpu_seconds: cpu,
    cpu_s_per_million_findings: +(cpu / findings * 1e6).toFixed(1),
    cpu_us_per_finding: +(cpu / findings * 1e6).toFixed(2), peak_rss_kb: mem.hwm_kb,
    diff_records: sumMetric(counters, "scanwatch_diff_records_total"),
    windows_closed: sumMetric(counters, "scanwatch_windows_closed_total"),
    backlog_latency_p50_s: quantile(lat, 0.5), shutdown_s: shutdown,
    state_bytes: dirBytes(join(dir, "state")), mail_files: existsSync(join(dir, "mail")) ? readdirSync(join(dir, "mail")).length : 0,
    loadavg: loadavg()[0], ...emuLoad, emulator_hwm_after_kb: procMem(emu.pid).hwm_kb,
  };
  rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---- floors and peers ----
async function runBare(round) {
  const r = await runJson(bins.receive, ["--mode", "bare", "--port", String(emuPort), "--events", String(stream.events),
    "--partitions", String(PARTS)], "sw-bench-receive");
  return { mode: "bare", round, events: r.events, seconds: r.seconds, events_per_s: r.events_per_s,
    cpu_us_per_finding: r.cpu_us_per_event, loadavg: loadavg()[0] };
}
async function runFloor(mode, round) {
  const argv = ["--mode", mode, "--input", streamPath];
  const dir = join(WORK, "floor-db");
  if (mode === "rocksdb") {
    rmSync(dir, { recursive: true, force: true });
    argv.push("--dir", dir);
  }
  const r = await runJson(bins.floor, argv, `sw-bench-e2e-floor ${mode}`);
  rmSync(dir, { recursive: true, force: true });
  return { ...r, round, loadavg: loadavg()[0] };
}
async function runJs(round) {
  const n = JS_EVENTS > 0 ? Math.min(JS_EVENTS, stream.events) : stream.events;
  const r = await runJson("node", [join(here, "..", "receive", "js_subscribe.mjs"), "--parse",
    "--port", String(emuPort), "--hub", "eh1", "--events", String(n), "--sdk-dir", SDK_DIR],
    "js_subscribe.mjs --parse");
  return { ...r, mode: "js", round, cpu_us_per_finding: r.cpu_us_per_event, loadavg: loadavg()[0] };
}

// ---- latency under a steady live feed ----
async function runLive() {
  const liveImages = Math.max(10, Math.ceil((LIVE_RATE * LIVE_SECONDS) / (PER_IMAGE * (2 + RESCANS))));
  const livePath = join(WORK, "live.ndjson");
  // a later day than the preloaded stream: every image of it is a new image
  const live = generate(livePath, liveImages, 2, "2026-03-01T02:00:00Z");
  const lines = readFileSync(livePath, "utf8").split("\n").filter((l) => l);
  const dir = join(WORK, "live");
  const port = await freePort();
  const p = startService(dir, port);
  await waitEvents(p, port, stream.events, E2E_TIMEOUT_MS);
  const before = histogram(await metrics(port), "scanwatch_processing_latency_seconds");
  // producer: the SDK; every 10 ms the events due by then, one batch per partition
  const require = createRequire(join(SDK_DIR, "package.json"));
  const { EventHubProducerClient } = await import(pathToFileURL(require.resolve("@azure/event-hubs")).href);
  const producer = new EventHubProducerClient(connStr(), "eh1");
  const ids = await producer.getPartitionIds();
  const t0 = Date.now();
  let sent = 0;
  const total = Math.min(lines.length, Math.round(LIVE_RATE * LIVE_SECONDS));
  const sendTo = async (pid, ls) => {
    let batch = await producer.createBatch({ partitionId: pid });
    for (const l of ls) {
      const ev = { body: Buffer.from(l, "utf8") };
      if (!batch.tryAdd(ev)) {
        await producer.sendBatch(batch);
        batch = await producer.createBatch({ partitionId: pid });
        batch.tryAdd(ev);
      }
    }
    if (batch.count > 0) await producer.sendBatch(batch);
  };
  while (sent < total) {
    const due = Math.min(total, Math.round(((Date.now() - t0) / 1000) * LIVE_RATE));
    if (due > sent) {
      const per = ids.map(() => []);
      for (let k = sent; k < due; k++) per[k % ids.length].push(lines[k]);
      await Promise.all(per.map((ls, i) => (ls.length ? sendTo(ids[i], ls) : null)));
      sent = due;
    }
    await sleep(10);
  }
  const pubSecs = (Date.now() - t0) / 1000;
  await producer.close();
  const text = await waitEvents(p, port, stream.events + total, 600000);
  const after = histogram(text, "scanwatch_processing_latency_seconds");
  const delta = after.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)]);
  await stopService(p);
  rmSync(dir, { recursive: true, force: true });
  return { mode: "live", events: total, rate_target: LIVE_RATE, rate_sent: Math.round(total / pubSecs),
    latency_p50_s: quantile(delta, 0.5), latency_p99_s: quantile(delta, 0.99), buckets: delta,
    loadavg: loadavg()[0], live_bytes: live.bytes };
}

// ---- main ----
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const stats = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a) });

try {
  await startEmulator();
  const rows = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      let r;
      const emuCpu0 = procCpu(emu.pid);
      if (mode === "bare") r = await runBare(round);
      else if (mode === "e2e") r = await runE2e(round);
      else if (mode === "parse" || mode === "rocksdb") r = await runFloor(mode, round);
      else if (mode === "js") r = await runJs(round);
      else throw new Error(`unknown mode ${mode}`);
      // what serving this consumer cost the emulator (it shares the 2 cores)
      if (r.events > 0) r.emulator_cpu_us_per_event = +(((procCpu(emu.pid) - emuCpu0) * 1e6) / r.events).toFixed(2);
      if (LABEL) r.label = LABEL;
      rows.push(r);
      emit(r);
    }
  }
  const by = (m) => rows.filter((r) => r.mode === m);
  const summary = { label: LABEL, images: IMAGES, partitions: PARTS, events: stream.events, bytes: stream.bytes,
    rounds: ROUNDS, mail_mode: MAIL_MODE, rescans: RESCANS, interval: INTERVAL, ...emuLoad };
  for (const m of MODES) {
    const rs = by(m);
    summary[m] = {
      cpu_us_per_finding: stats(rs.map((r) => r.cpu_us_per_finding)),
      per_s: stats(rs.map((r) => r.findings_per_s ?? r.events_per_s)),
    };
    if (m === "e2e") {
      for (const k of ["events_per_s", "findings_per_s", "mb_per_s", "peak_rss_kb", "cpu_s_per_million_findings", "seconds"]) {
        summary.e2e[k] = stats(rs.map((r) => r[k]));
      }
      summary.e2e.findings = rs[0].findings;
      summary.e2e.diff_records = rs[0].diff_records;
    }
  }
  // Ratios per round (same machine load within a round), then their median.
  const perRound = (f) => {
    const v = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const x = Object.fromEntries(rows.filter((r) => r.round === round).map((r) => [r.mode, r]));
      const y = f(x);
      if (y !== null && Number.isFinite(y)) v.push(y);
    }
    return v.length ? stats(v) : null;
  };
  const has = (x, ...ms) => ms.every((m) => x[m]);
  summary.ratios = {
    e2e_over_bare_rate: perRound((x) => (has(x, "e2e", "bare") ? x.e2e.events_per_s / x.bare.events_per_s : null)),
    e2e_over_parse_rate: perRound((x) => (has(x, "e2e", "parse") ? x.e2e.findings_per_s / x.parse.findings_per_s : null)),
    e2e_over_rocksdb_rate: perRound((x) => (has(x, "e2e", "rocksdb") ? x.e2e.findings_per_s / x.rocksdb.findings_per_s : null)),
    e2e_over_js_rate: perRound((x) => (has(x, "e2e", "js") ? x.e2e.events_per_s / x.js.events_per_s : null)),
    e2e_cpu_over_floors: perRound((x) => (has(x, "e2e", "bare", "parse", "rocksdb")
      ? x.e2e.cpu_us_per_finding / (x.bare.cpu_us_per_finding + x.parse.cpu_us_per_finding + x.rocksdb.cpu_us_per_finding) : null)),
    js_cpu_over_e2e_cpu: perRound((x) => (has(x, "e2e", "js") ? x.js.cpu_us_per_finding / x.e2e.cpu_us_per_finding : null)),
  };
  if (LIVE_RATE > 0) {
    const r = await runLive();
    if (LABEL) r.label = LABEL;
    emit(r);
    summary.live = { rate: r.rate_sent, p50_s: r.latency_p50_s, p99_s: r.latency_p99_s };
  }
  emit({ summary });
} catch (e) {
  console.error(`e2e benchmark failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  cleanup();
  if (!args.includes("--keep")) rmSync(WORK, { recursive: true, force: true });
}
// Sockets of the SDK producer or fetch may linger; the results are written.
process.exit(process.exitCode ?? 0);
