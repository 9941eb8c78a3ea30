// Mail volume of a mass-rescan day (docs/benchmarks.md, section "e2e"): N images, each
// scanned once (stored silently: first_scan baseline), then all rescanned the next day
// after a CVE feed update — every rescan brings new findings. The same stream runs through
// `scanwatch run` twice, with mail_mode per_image and digest, into the dir: mail sink.
//
//   node bench/e2e/mail.mjs --build DIR [--images 10000] [--recipients 2] [--out FILE]
//
// per_image runs with mail_rate 6000 so that every mail is written quickly; the time the
// same mails need at the default mail_rate (30/min) is computed. digest runs with the
// default mail_rate and digest_interval (1h): the day's digest is then released by
// `scanwatch notify --flush-digests`, which builds exactly the mails the interval would
// send; mails per minute are measured over the flush. Prints one JSON line per mode.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, existsSync, appendFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { tmpdir } from "node:os";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const args = process.argv.slice(2);
const argOf = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const BUILD = resolve(argOf("--build", process.env.SW_BUILD_DIR ?? join(root, "build")));
const IMAGES = Number(argOf("--images", "10000"));
const RCPT = Number(argOf("--recipients", "2"));
const OUT = argOf("--out");
const WORK = resolve(argOf("--work", join(tmpdir(), `sw-e2e-mail-${process.pid}`)));
if (!(IMAGES > 0) || !(RCPT > 0)) {
  console.error("usage: node mail.mjs --build DIR [--images N] [--recipients R] [--out FILE]");
  process.exit(2);
}
const bin = {
  scanwatch: join(BUILD, "consumer", "scanwatch"),
  emulator: join(BUILD, "emulator", "scanwatch-emulator"),
  gen: join(BUILD, "tests", "gen", "sw-gen"),
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const emit = (o) => {
  console.log(JSON.stringify(o));
  if (OUT) appendFileSync(OUT, JSON.stringify(o) + "\n");
};
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

const children = new Set();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));
function track(p) {
  children.add(p);
  p.done = new Promise((r) => p.on("exit", (code) => {
    children.delete(p);
    r(code);
  }));
  return p;
}

// Day 1: first scans; day 2: rescans, 20 % of each image's findings replaced by new CVEs.
const stream = join(WORK, "stream.ndjson");
{
  const r = spawnSync(bin.gen, ["--seed", "3", "--images", String(IMAGES), "--findings", "10", "--rescans", "1",
    "--churn", "0.2", "--mix", "1,18,1", "--start", "2026-01-05T02:00:00Z", "--out", stream]);
  if (r.status !== 0) throw new Error(`sw-gen: ${r.stderr}`);
}
let events = 0; // counted on bytes: the stream can exceed the longest JS string
{
  const buf = readFileSync(stream);
  for (let i = 0; i < buf.length; i++) if (buf[i] === 10) events++;
}
const rescanDay = "2026-01-06T00:00:00Z";

const emu = track(spawn(bin.emulator, ["--port", "0", "--no-control-stdin", "--no-auth", "--hub", "eh1:4",
  "--retain-count", "0", "--retain-bytes", "0", "--log-level", "error", "--load", stream], { stdio: ["ignore", "pipe", "inherit"] }));
const port = await new Promise((res, rej) => {
  let buf = "";
  emu.stdout.on("data", (d) => {
    buf += d;
    const m = buf.match(/ready port=(\d+)/);
    if (m) res(Number(m[1]));
  });
  emu.done.then((c) => rej(new Error(`emulator exited ${c}`)));
});
const cs = `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;
const to = Array.from({ length: RCPT }, (_, i) => `team${i + 1}@contoso.example`).join(",");

async function freePort() {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port: p } = srv.address();
      srv.close(() => res(p));
    });
  });
}
async function metric(mport, name) {
  try {
    const t = await (await fetch(`http://127.0.0.1:${mport}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    let s = 0;
    for (const m of t.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))) s += Number(m[1]);
    return s;
  } catch {
    return -1;
  }
}
function mails(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => {
    const p = join(dir, f);
    const j = JSON.parse(readFileSync(p, "utf8"));
    const m = j.message ?? j;
    const n = (m.toRecipients?.length ?? 0) + (m.ccRecipients?.length ?? 0) + (m.bccRecipients?.length ?? 0);
    return { t: statSync(p).mtimeMs, bytes: statSync(p).size, recipients: n };
  });
}
function perMinuteMax(ms) {
  const t = ms.map((m) => m.t).sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= 60000) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function run(mode) {
  const dir = join(WORK, mode);
  const mailDir = join(dir, "mail");
  mkdirSync(dir, { recursive: true });
  const mport = await freePort();
  const common = ["--connection-string", cs, "--eventhub", "eh1", "--state-dir", join(dir, "state"),
    "--mail-sink", `dir:${mailDir}`, "--mail-to", to, "--mail-mode", mode, "--first-scan", "baseline",
    "--baseline-until", rescanDay, "--progress-interval", "0", "--log-level", "warn"];
  const extra = mode === "per_image" ? ["--mail-rate", "6000"] : [];
  const svc = track(spawn(bin.scanwatch, ["run", ...common, ...extra, "--metrics-port", String(mport),
    "--metrics-bind", "127.0.0.1", "--scan-quiet", "10s"], { stdio: ["ignore", "ignore", "inherit"] }));
  const t0 = Date.now();
  // every event processed, every window closed (the last ones by scan_quiet once caught up)
  let diffs = 0;
  for (;;) {
    if (Date.now() - t0 > 1800000) throw new Error(`${mode}: timeout`);
    if (svc.exitCode !== null) throw new Error(`${mode}: scanwatch exited ${svc.exitCode}`);
    const ev = await metric(mport, "scanwatch_events_total");
    diffs = await metric(mport, "scanwatch_diff_records_total");
    const win = await metric(mport, "scanwatch_windows_closed_total");
    if (ev >= events && win >= 2 * IMAGES) break;
    await sleep(500);
  }
  diffs = await metric(mport, "scanwatch_diff_records_total");
  if (mode === "per_image") {
    while ((await metric(mport, "scanwatch_outbox_depth")) !== 0 || mails(mailDir).length < diffs) {
      if (Date.now() - t0 > 1800000) throw new Error("per_image: mails did not all arrive");
      await sleep(500);
    }
  } else {
    while ((await metric(mport, "scanwatch_outbox_depth")) !== 0) await sleep(500);
  }
  svc.kill("SIGTERM");
  await svc.done;
  let flushSecs = 0;
  if (mode === "digest") {
    const f0 = Date.now();
    const r = spawnSync(bin.scanwatch, ["notify", "--flush-digests", "--state", join(dir, "state"),
      ...common.slice(6, 14), "--log-level", "warn"], { timeout: 1800000 });
    if (r.status !== 0) throw new Error(`notify --flush-digests: ${r.stderr}`);
    flushSecs = (Date.now() - f0) / 1000;
  }
  const ms = mails(mailDir);
  const recipients = ms.reduce((a, m) => a + m.recipients, 0);
  const r = { mode: `mail_${mode}`, images: IMAGES, events, diff_records: diffs, mails: ms.length,
    recipients, recipients_per_mail: RCPT, mail_bytes: ms.reduce((a, m) => a + m.bytes, 0),
    max_mail_bytes: Math.max(0, ...ms.map((m) => m.bytes)), max_mails_per_minute: perMinuteMax(ms),
    minutes_at_30_per_min: +(ms.length / 30).toFixed(1), flush_seconds: flushSecs };
  emit(r);
  return r;
}

try {
  await run("per_image");
  await run("digest");
} catch (e) {
  console.error(`mail benchmark failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  children.forEach((c) => c.kill("SIGKILL"));
  if (!args.includes("--keep")) rmSync(WORK, { recursive: true, force: true });
}
// Sockets of the SDK producer or fetch may linger; the results are written.
process.exit(process.exitCode ?? 0);
