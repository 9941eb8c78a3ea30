// Shared pieces of the resilience tests (tests/chaos/*.mjs): the emulator with its control
// channel, the fake Graph, `scanwatch run` with the graph sink, the offline specification
// (`scanwatch process` of the same sw-gen stream), and the comparisons. Node built-ins only:
// events are published through the emulator's control channel, which faults do not touch, so
// the stream on the hub is exactly the generated one.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { diffKey, readDiffs } from "./diffs.mjs";

export { diffKey, readDiffs };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every process a test starts is killed when the test exits, however it exits.
const children = new Set();
function track(p) {
  children.add(p);
  p.on("exit", () => children.delete(p));
  return p;
}
process.on("exit", () => {
  for (const p of children) p.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(130));
}

// Small seeded PRNG (mulberry32) so a run's schedule of kills and faults is reproducible.
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
  };
}

export function parseArgs(argv, defaults) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith("--")) throw new Error(`unexpected argument ${k}`);
    const name = k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(name in o)) throw new Error(`unknown flag ${k}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`flag ${k} needs a value`);
    o[name] = typeof o[name] === "number" ? Number(v) : v;
    if (typeof o[name] === "number" && !Number.isFinite(o[name])) throw new Error(`flag ${k}: not a number: ${v}`);
  }
  return o;
}

export class Checks {
  constructor() {
    this.failures = 0;
    this.results = [];
  }
  check(cond, what, got, want) {
    this.results.push({ what, ok: !!cond, got, want });
    if (cond) {
      console.log(`ok: ${what}`);
      return true;
    }
    this.failures++;
    const detail = got !== undefined || want !== undefined ? ` (got ${JSON.stringify(got)}, want ${JSON.stringify(want)})` : "";
    console.error(`FAIL: ${what}${detail}`);
    return false;
  }
}

export async function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function httpGet(port, path) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
    return { status: r.status, text: await r.text() };
  } catch (e) {
    return { status: 0, text: String(e.cause?.code ?? e.message) };
  }
}

export function metric(text, name, labels = "") {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}"]/g, (c) => `\\${c}`)}\\}` : ""} (\\S+)$`, "m");
  const m = text.match(re);
  return m ? Number(m[1]) : undefined;
}

// ---- the stream and its specification ----

export function generate(gen, out, { seed, images, findings = 15, rescans }) {
  const r = spawnSync(gen, ["--seed", String(seed), "--images", String(images), "--findings", String(findings),
    "--rescans", String(rescans), "--churn", "0.2", "--clean", "0.1", "--other", "0.05", "--bad", "0.01",
    "--snapshot-every", "3", "--out", out]);
  if (r.status !== 0) throw new Error(`sw-gen: ${r.stderr}`);
  return readFileSync(out, "utf8").split("\n").filter((l) => l.length > 0);
}

// Indices of the lines where a new scan begins (the image changes; lines without an image,
// other events and bad ones, belong to the scan around them). Streams are cut only there:
// the records of one scan reach the hub together, as Defender sends them.
export function scanStarts(lines) {
  const starts = [];
  let prev = null;
  lines.forEach((l, i) => {
    const m = l.match(/sha256:[0-9a-f]{64}/);
    if (m && m[0] !== prev) {
      if (prev !== null) starts.push(i);
      prev = m[0];
    }
  });
  return starts;
}

// The scan start nearest to line `want`.
export function cutNear(starts, want) {
  let best = starts[0];
  for (const c of starts) if (Math.abs(c - want) < Math.abs(best - want)) best = c;
  return best;
}

export function offlineDiffs(scanwatch, streamPath, dir, scanQuiet) {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync(scanwatch, ["process", "--state", join(dir, "state"), "--diff-log", join(dir, "diffs.ndjson"),
    "--scan-quiet", scanQuiet, "--log-level", "error", streamPath]);
  if (r.status !== 0) throw new Error(`scanwatch process: ${r.stderr}`);
  return readDiffs(join(dir, "diffs.ndjson")).map(diffKey);
}

// A mail's identity: its Graph request with the rendering time in the footer masked, so that
// the same diff record mailed by two runs compares equal. A resend carries the stored bytes.
export function mailKey(request) {
  const m = JSON.parse(JSON.stringify(request));
  if (m.message?.body?.content) {
    m.message.body.content = m.message.body.content.replace(/ at \d{4}-\d\d-\d\dT[0-9:.]+Z from /g, " at - from ");
  }
  return createHash("sha256").update(JSON.stringify(m)).digest("hex");
}

// Counts of a multiset comparison: lost (in want, not in got), duplicated (got beyond its
// first copy), unexpected (in got, not in want).
export function compareKeys(got, want) {
  const wantSet = new Set(want);
  const seen = new Map();
  for (const k of got) seen.set(k, (seen.get(k) ?? 0) + 1);
  let duplicated = 0;
  for (const n of seen.values()) duplicated += n - 1;
  const lost = [...wantSet].filter((k) => !seen.has(k));
  const unexpected = [...seen.keys()].filter((k) => !wantSet.has(k));
  return { total: got.length, distinct: seen.size, expected: wantSet.size, lost: lost.length, duplicated,
    unexpected: unexpected.length, lostSample: lost.slice(0, 3), unexpectedSample: unexpected.slice(0, 3) };
}

// ---- the emulator ----

export const HUB_KEY_NAME = "RootManageSharedAccessKey";

export class Emulator {
  constructor(bin, hubs, { port = 0 } = {}) {
    this.bin = bin;
    this.hubs = hubs;
    this.wantPort = port;
    this.key = randomBytes(24).toString("base64");
  }
  // load: a file whose lines are published round-robin before the emulator listens (to bring
  // a hub back with the events it held: the emulator keeps them in memory only).
  async start({ load } = {}) {
    const args = ["--port", String(this.wantPort), "--control-port", "0", "--no-control-stdin", "--log-level", "error",
      "--sas-key", `${HUB_KEY_NAME}=${this.key}`];
    for (const h of this.hubs) args.push("--hub", h);
    if (load) args.push("--load", load);
    this.proc = track(spawn(this.bin, args, { stdio: ["ignore", "pipe", "inherit"] }));
    const exited = new Promise((resolve) => this.proc.on("exit", (code, sig) => resolve({ code, sig })));
    this.exited = exited;
    [this.port, this.controlPort] = await new Promise((resolve, reject) => {
      let buf = "";
      this.proc.stdout.on("data", (d) => {
        buf += d;
        const m = buf.match(/ready port=(\d+) control-port=(\d+)/);
        if (m) resolve([Number(m[1]), Number(m[2])]);
      });
      exited.then(({ code }) => reject(new Error(`emulator exited ${code}`)));
      setTimeout(() => reject(new Error("emulator did not start")), 15000);
    });
    this.replies = [];
    this.sock = connect(this.controlPort, "127.0.0.1");
    this.sock.setNoDelay(true);
    let buf = "";
    this.sock.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const r = this.replies.shift();
        if (r) r(line);
      }
    });
    this.sock.on("error", () => {});
    await new Promise((resolve) => this.sock.once("connect", resolve));
  }
  // One control command; resolves with its reply line.
  ctl(cmd) {
    return new Promise((resolve) => {
      this.replies.push(resolve);
      this.sock.write(`${cmd}\n`);
    });
  }
  connStr() {
    return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=${HUB_KEY_NAME};SharedAccessKey=${this.key};UseDevelopmentEmulator=true`;
  }
  // Publishes lines[from..to) round-robin over `parts` partitions by global line index, so
  // that a burst within one millisecond keeps stream order in the service's merge.
  async publish(hub, lines, from, to, parts = 4) {
    const pending = [];
    for (let i = from; i < to; i++) pending.push(this.ctl(`publish ${hub}/${i % parts} ${lines[i]}`));
    const replies = await Promise.all(pending);
    const bad = replies.filter((r) => !r.startsWith("ok"));
    if (bad.length > 0) throw new Error(`publish: ${bad[0]}`);
  }
  async stop(signal = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.sock?.destroy();
    this.proc.kill(signal);
    await this.exited;
  }
}

// ---- the fake Graph ----

export const GRAPH_SECRET = `chaos-secret-${randomBytes(8).toString("hex")}`;
export const GRAPH_SENDER = "alerts@example.com";

export class FakeGraph {
  constructor(script) {
    this.script = script;
  }
  async start() {
    this.proc = track(spawn(process.execPath, [this.script, "--client-secret", GRAPH_SECRET, "--sender", GRAPH_SENDER],
      { stdio: ["pipe", "pipe", "pipe"] }));
    this.stderrText = "";
    this.proc.stderr.on("data", (d) => {
      this.stderrText += d;
    });
    this.proc.on("exit", (code, signal) => {
      if (!this.stopping) console.error(`fake graph exited unexpectedly (${code ?? signal}): ${this.stderrText.slice(-2000)}`);
    });
    this.port = await new Promise((resolve, reject) => {
      let buf = "";
      this.proc.stdout.on("data", (d) => {
        buf += d;
        const m = buf.match(/PORT (\d+)/);
        if (m) resolve(Number(m[1]));
      });
      this.proc.on("exit", (code) => reject(new Error(`fake graph exited ${code}`)));
      setTimeout(() => reject(new Error("fake graph did not start")), 15000);
    });
  }
  base() {
    return `http://127.0.0.1:${this.port}`;
  }
  async get(path) {
    const r = await fetch(`${this.base()}/_control/${path}`);
    return r.json();
  }
  async post(path, body) {
    const r = await fetch(`${this.base()}/_control/${path}`, { method: "POST", body: JSON.stringify(body ?? {}) });
    return r.json();
  }
  stop() {
    this.stopping = true;
    this.proc?.stdin.end();
    this.proc?.kill("SIGTERM");
  }
}

// ---- the service ----

export class Service {
  // opts: { scanwatch, emu, hub, graph, dir, extra: [] }
  constructor(opts) {
    this.o = opts;
    mkdirSync(opts.dir, { recursive: true });
  }
  args(extra = []) {
    const { emu, hub, graph, dir } = this.o;
    return ["--connection-string", emu.connStr(), "--eventhub", hub, "--state-dir", join(dir, "state"),
      "--mail-sink", "graph", "--mail-sender", GRAPH_SENDER, "--tenant-id", "test-tenant", "--client-id", "test-client",
      "--client-secret", GRAPH_SECRET, "--graph-base-url", graph.base(), "--authority-host", graph.base(),
      "--mail-to", "secops@contoso.example", "--diff-log", join(dir, "diffs.ndjson"), "--scan-quiet", "2s",
      "--lag-poll-interval", "200ms", "--progress-interval", "0", "--log-level", "info", "--metrics-bind", "127.0.0.1",
      ...(this.o.extra ?? []), ...extra];
  }
  async start(extra = []) {
    this.metricsPort = await freePort();
    const p = track(spawn(this.o.scanwatch, ["run", ...this.args(["--metrics-port", String(this.metricsPort), ...extra])],
      { stdio: ["ignore", "ignore", "pipe"] }));
    p.stderrText = "";
    p.stderr.on("data", (d) => {
      p.stderrText += d;
    });
    this.runs = (this.runs ?? 0) + 1;
    const logPath = join(this.o.dir, `run-${this.runs}.log`);
    p.done = new Promise((resolve) => p.on("exit", (code, signal) => {
      writeFileSync(logPath, p.stderrText); // kept for post-mortems
      resolve({ code, signal });
    }));
    p.startedAt = Date.now();
    this.proc = p;
    return p;
  }
  logs() {
    return (this.proc?.stderrText ?? "").split("\n").filter((l) => l.startsWith("{")).map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null; // a line torn by SIGKILL
      }
    }).filter((x) => x !== null);
  }
  diffs() {
    return readDiffs(join(this.o.dir, "diffs.ndjson"));
  }
  async metrics() {
    return (await httpGet(this.metricsPort, "/metrics")).text;
  }
  rssKiB() {
    try {
      const m = readFileSync(`/proc/${this.proc.pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

// sendMail outcomes the service logged (each is the answer to one request it made; a token
// failure made no request).
export function mailOutcomes(logs) {
  let n = 0;
  for (const l of logs) {
    if (l.msg === "mail sent" || l.msg === "mail moved to the dead letter" ||
        (l.msg === "mail not accepted; will retry" && l.graph_code !== "token")) {
      n++;
    }
  }
  return n;
}
