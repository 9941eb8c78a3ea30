#!/usr/bin/env node
// Hostile and bad input through the real paths (issue 9, item 6): `scanwatch decode`,
// `scanwatch process` + `scanwatch notify` (dir: sink) offline, and the service end to end
// (emulator -> `scanwatch run` -> state -> mail files), one partition, hostile events between
// ordinary ones. Node built-ins only.
//
// Cases: bodies at and above max_message_size; JSON nested 10,000 deep (object, array, inside
// a finding); HTML, control characters and bidi overrides in every text field; 60,000 tags;
// invalid UTF-8 in a field the finding carries and in one it ignores; a lone surrogate; NUL
// after the JSON; a 500 KB title; CVSS 1e999; unknown assessedResourceTypes (hostile, 100 KB
// long, 600 distinct ones); 100,500 findings in one scan of one image.
// Each must be counted (decode summary, metrics by reason), dead-lettered with its reason or
// rendered safely (mail HTML escaped, diff log valid JSON, headers and subject clean), and the
// partition keeps flowing: the ordinary events' diff records equal those of the ordinary
// events alone.
//
// usage: hostile.mjs --scanwatch BIN --emulator BIN --gen BIN --work DIR [--big-findings N]
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const { scanwatch: SCANWATCH, emulator: EMULATOR, gen: GEN, work: WORK } = args;
const BIG = Number(args["big-findings"] ?? 100500);
const PARTS = (args.parts ?? "offline,big,service").split(","); // to rerun one part while debugging
if (!SCANWATCH || !EMULATOR || !GEN || !WORK) {
  console.error("usage: hostile.mjs --scanwatch BIN --emulator BIN --gen BIN --work DIR [--big-findings N]");
  process.exit(2);
}
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

let failures = 0;
function check(ok, what, got, want) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    const show = (v) => { const s = JSON.stringify(v); return s && s.length > 400 ? s.slice(0, 400) + "..." : s; };
    console.log(`FAIL ${what}\n     got:  ${show(got)}\n     want: ${show(want)}`);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on("exit", () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));
function sw(argv, opts = {}) {
  return spawnSync(SCANWATCH, argv, { encoding: "utf8", maxBuffer: 1 << 30, timeout: 120000, ...opts });
}

// ---- building blocks ----
const gen = (argv) => {
  const r = spawnSync(GEN, argv, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`sw-gen: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
};
const good = gen(["--seed", "11", "--images", "4", "--findings", "5", "--rescans", "2", "--mix", "1,1,1", "--churn", "0.3"]);
const template = JSON.parse(gen(["--seed", "12", "--images", "1", "--findings", "1", "--rescans", "0", "--mix", "0,1,0"])[0]);
let digestN = 0;
// An MDVM finding of its own image; f edits the record (P = Properties, A = AdditionalData).
function finding(f = () => {}) {
  const r = structuredClone(template);
  const P = r.Properties, A = P.AdditionalData;
  A.ArtifactDetails.Digest = `sha256:${(++digestN).toString(16).padStart(64, "0")}`;
  A.ArtifactDetails.RepositoryName = `hostile/case-${digestN}`;
  P.TimeGenerated = "2026-01-05T02:00:00Z";
  f(P, A, r);
  return r;
}
const imageOf = (r) => `${r.Properties.AdditionalData.ArtifactDetails.RegistryHost.toLowerCase()}/` +
  `${r.Properties.AdditionalData.ArtifactDetails.RepositoryName}@${r.Properties.AdditionalData.ArtifactDetails.Digest}`;
// Pads a finding's JSON with an ignored member to exactly n bytes.
function padded(r, n) {
  const base = Buffer.byteLength(JSON.stringify({ ...r, Padding: "" }));
  if (n < base) throw new Error("pad target too small");
  return Buffer.from(JSON.stringify({ ...r, Padding: "x".repeat(n - base) }));
}
const deep = (n, open, close, inner = "1") => open.repeat(n) + inner + close.repeat(n);
const EVIL = "<script>alert(\"x\")</script><img src=x onerror=alert(1)>&amp;\u0001\u0007\u001b[31m\r\n\t\u007f\u0085\u202e'\"";
const ctrlRe = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e]/;

// [name, body (string|Buffer), expectation: "finding" | "skipped" | bad reason, image (findings)]
function hostileCases(limit, above) {
  const cases = [];
  const add = (name, body, expect, rec) => cases.push({ name, body: Buffer.isBuffer(body) ? body : Buffer.from(body), expect, image: rec ? imageOf(rec) : null, rec });
  let r = finding();
  add("at max_message_size", padded(r, limit), "finding", r);
  add("above max_message_size", padded(finding(), above), "too_large");
  add("object nested 10,000 deep", deep(10000, '{"a":', "}"), "too_deep");
  add("array nested 10,000 deep", deep(10000, "[", "]"), "too_deep");
  r = finding();
  add("10,000 deep inside a finding", JSON.stringify({ ...r, Extra: "@@" }).replace('"@@"', deep(10000, "[", "]")), "too_deep");
  r = finding((P, A) => {
    P.Id = `CVE-2024-0001${EVIL}`;
    A.VulnerabilityDetails.CveId = P.Id;
    P.DisplayName = `Title ${EVIL}`;
    P.Description = `Description ${EVIL}`;
    A.ArtifactDetails.RepositoryName = `hostile/${EVIL}`;
    A.ArtifactDetails.Tags = [`tag${EVIL}`, "v1"];
    A.SoftwareDetails.PackageName = `pkg${EVIL}`;
    A.SoftwareDetails.Version = `1${EVIL}`;
    A.SoftwareDetails.FixedVersion = `2${EVIL}`;
    A.VulnerabilityDetails.References = [{ Title: "js", Link: "javascript:alert(1)" },
      { Title: "quote", Link: `https://example.com/"><script>alert(1)</script>` }, { Title: "data", Link: "data:text/html,<script>x</script>" }];
  });
  add("HTML and control characters in every text field", JSON.stringify(r), "finding", r);
  r = finding((P, A) => { A.ArtifactDetails.RegistryHost = `evil${EVIL}.azurecr.io`; });
  add("HTML and control characters in the registry", JSON.stringify(r), "finding", r);
  r = finding((P, A) => { A.ArtifactDetails.Tags = Array.from({ length: 60000 }, (_, i) => `t${i}`); });
  add("60,000 tags", JSON.stringify(r), "finding", r);
  r = finding((P) => { P.DisplayName = "@@BAD@@"; });
  add("invalid UTF-8 in the title", Buffer.concat(JSON.stringify(r).split("@@BAD@@").flatMap((s, i) => i ? [Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from(s)] : [Buffer.from(s)])), "bad_utf8");
  r = finding((P, A) => { A.Ignored = "@@BAD@@"; });
  add("invalid UTF-8 in an ignored member", Buffer.concat(JSON.stringify(r).split("@@BAD@@").flatMap((s, i) => i ? [Buffer.from([0xff, 0xfe]), Buffer.from(s)] : [Buffer.from(s)])), "finding", r);
  r = finding();
  // cJSON refuses a lone surrogate escape while parsing: a not_json bad event.
  add("a lone surrogate in the title", JSON.stringify(r).replace(/"DisplayName":"[^"]*"/, '"DisplayName":"x\\ud800y"'), "not_json");
  add("NUL after the JSON", Buffer.concat([Buffer.from(JSON.stringify(finding())), Buffer.from([0])]), "not_json");
  r = finding((P) => { P.DisplayName = "T".repeat(500000); });
  add("a 500 KB title", JSON.stringify(r), "finding", r);
  r = finding();
  add("CVSS 1e999", JSON.stringify(r).replace(/"CvssV30Score":[0-9.]+/, '"CvssV30Score":1e999').replace(/"Base":[0-9.]+/, '"Base":1e999'), "finding", r);
  const unknown = (type) => finding((P, A) => { A.AssessedResourceType = type; });
  add("a hostile unknown assessedResourceType", JSON.stringify(unknown(`Evil<script>"\n\u001b[31m{}`)), "skipped");
  add("a 100 KB unknown assessedResourceType", JSON.stringify(unknown("X".repeat(100000))), "skipped");
  for (let i = 0; i < 600; i++) add(`unknown assessedResourceType ${i}`, JSON.stringify(unknown(`Kind${i}`)), "skipped");
  return cases;
}

// Hostile events between ordinary ones: after every ordinary line one hostile line, the rest at the end.
function interleave(cases) {
  const out = [];
  let h = 0;
  for (const g of good) {
    out.push(Buffer.from(g));
    if (h < cases.length) out.push(cases[h++].body);
  }
  while (h < cases.length) out.push(cases[h++].body);
  return out;
}
const writeLines = (path, bufs) => writeFileSync(path, Buffer.concat(bufs.flatMap((b) => [b, Buffer.from("\n")])));
const readLines = (path) => (existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : []);
const diffKey = (d) => JSON.stringify([d.image, d.scan_time, d.new.map((f) => f.key).sort(), [...d.resolved].sort()]);

// ---- mail safety ----
function checkMails(dir, what) {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
  let bad = [];
  let parsed = 0;
  for (const f of files) {
    let m;
    try {
      m = JSON.parse(readFileSync(join(dir, f), "utf8"));
      parsed++;
    } catch (e) {
      bad.push(`${f}: not JSON: ${e}`);
      continue;
    }
    const html = m.message.body.content;
    for (const re of [/<script/i, /<img/i, /javascript:/i, /data:text/i, /onerror=/i]) {
      // onerror= inside escaped text is harmless only if no tag can open around it
      if (re.test(html) && !(re.source === "onerror=" && !/<img/i.test(html))) bad.push(`${f}: ${re} in the HTML`);
    }
    if (ctrlRe.test(html)) bad.push(`${f}: a control character in the HTML`);
    if (/[\u0000-\u001f\u007f]/.test(m.message.subject)) bad.push(`${f}: a control character in the subject`);
    for (const h of m.message.internetMessageHeaders ?? []) {
      if (!/^[\x20-\x7e]*$/.test(h.value)) bad.push(`${f}: header ${h.name} is not printable ASCII`);
    }
  }
  check(bad.length === 0 && parsed === files.length, `${what}: ${files.length} mails are JSON, their HTML escaped, subject and headers clean`, bad.slice(0, 5), []);
  return files.length;
}

function checkDiffLog(path, what) {
  const raw = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  const lines = raw.toString("utf8").split("\n").filter(Boolean);
  let bad = 0;
  for (const l of lines) {
    try { JSON.parse(l); } catch { bad++; }
  }
  check(bad === 0 && !/[\u0000-\u001f]/.test(raw.toString("utf8").replace(/\n/g, "")), `${what}: every diff log line is JSON, control characters escaped`, bad, 0);
  return lines.map((l) => JSON.parse(l));
}

// ---- 1. offline: decode, process, notify ----
const LIMIT = 1048576;
const offCases = hostileCases(LIMIT, LIMIT + 1);
if (PARTS.includes("offline")) {
  const dir = join(WORK, "offline");
  mkdirSync(dir, { recursive: true });
  const input = join(dir, "input.ndjson");
  writeLines(input, [...interleave(offCases), padded(finding(), 3 * LIMIT)]);
  writeLines(join(dir, "good.ndjson"), good.map((g) => Buffer.from(g)));
  const want = {};
  for (const c of offCases) want[c.expect] = (want[c.expect] ?? 0) + 1;
  want.too_large++; // the 3 MiB line

  // decode: counts by reason, every finding line JSON, nothing crashes.
  let r = sw(["decode", input]);
  check(r.status === 0, "decode: exit status 0", r.status, 0);
  for (const reason of ["too_large", "too_deep", "bad_utf8", "not_json"]) {
    const m = r.stderr.match(new RegExp(`bad: \\d+ \\(.*?${reason} (\\d+)`));
    check(m && Number(m[1]) === want[reason], `decode: ${reason} counted`, m ? Number(m[1]) : null, want[reason]);
  }
  const decoded = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const goodFindings = sw(["decode", join(dir, "good.ndjson")]).stdout.split("\n").filter(Boolean).length;
  check(decoded.length === goodFindings + want.finding, "decode: every ordinary and accepted hostile finding is printed",
    decoded.length, goodFindings + want.finding);
  const tagged = decoded.find((f) => f.image === offCases.find((c) => c.name === "60,000 tags").image);
  check(tagged && tagged.tags.length <= 64, "decode: a 60,000-tag list is cut to a bounded number", tagged?.tags.length, "<= 64");
  const evil = decoded.find((f) => f.image === offCases.find((c) => c.name.startsWith("HTML and control characters in every")).image);
  check(evil && evil.title === `Title ${EVIL}`, "decode: hostile text is carried faithfully (escaped only on output)", evil?.title, `Title ${EVIL}`);
  const skipped = r.stderr.match(/skipped: (\d+)/);
  check(skipped && Number(skipped[1]) === want.skipped, "decode: every unknown-type record is skipped and counted",
    r.stderr.match(/skipped: [^\n]*/)?.[0].slice(0, 120), want.skipped);

  // process: dead letter by reason, ordinary diff records unchanged.
  r = sw(["process", "--state", join(dir, "state"), "--diff-log", join(dir, "diffs.ndjson"), "--log-level", "warn", input]);
  check(r.status === 0, "process: exit status 0", [r.status, r.stderr.slice(-300)], 0);
  const g = sw(["process", "--state", join(dir, "good-state"), "--diff-log", join(dir, "good-diffs.ndjson"), "--log-level", "warn", join(dir, "good.ndjson")]);
  check(g.status === 0, "process (ordinary events alone): exit status 0", g.status, 0);
  const diffs = checkDiffLog(join(dir, "diffs.ndjson"), "process");
  const hostileImages = new Set(offCases.map((c) => c.image).filter(Boolean));
  const ordinary = diffs.filter((d) => !hostileImages.has(d.image)).map(diffKey).sort();
  const expected = readLines(join(dir, "good-diffs.ndjson")).map((l) => diffKey(JSON.parse(l))).sort();
  check(JSON.stringify(ordinary) === JSON.stringify(expected) && expected.length > 5,
    "process: the ordinary events' diff records equal those without hostile events", ordinary.length, expected.length);
  check(diffs.filter((d) => hostileImages.has(d.image)).length === hostileImages.size,
    "process: every accepted hostile finding makes its diff record", diffs.filter((d) => hostileImages.has(d.image)).length, hostileImages.size);
  const dl = sw(["state", "dead-letter", "--state", join(dir, "state"), "--json"]).stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  for (const reason of ["too_large", "too_deep", "bad_utf8", "not_json"]) {
    const n = dl.filter((d) => d.reason.startsWith(reason)).length;
    check(n === want[reason], `process: ${reason} dead-lettered`, n, want[reason]);
  }
  check(dl.every((d) => d.kept <= 65536 && d.size >= d.kept), "process: dead-letter bodies are kept bounded (dead_letter_max_bytes)",
    dl.map((d) => d.kept).sort((a, b) => b - a)[0], "<= 65536");
  const text = sw(["state", "images", "--state", join(dir, "state")]).stdout;
  check(!/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/.test(text), "state images: control characters shown escaped", text.match(/.{0,40}[\u0000-\u0008\u000b-\u001f\u007f]/)?.[0], "none");

  // notify: mails rendered safely.
  r = sw(["notify", "--state", join(dir, "state"), "--mail-sink", `dir:${join(dir, "mail")}`, "--mail-to", "secops@example.com",
    "--mail-rate", "6000", "--log-level", "warn", "--timeout", "60s"]);
  check(r.status === 0, "notify: exit status 0", [r.status, r.stderr.slice(-300)], 0);
  const n = checkMails(join(dir, "mail"), "notify");
  check(n >= diffs.length, "notify: a mail for every diff record", n, `>= ${diffs.length}`);
}

// ---- 2. 100,500 findings in one scan of one image ----
if (PARTS.includes("big")) {
  const dir = join(WORK, "big");
  mkdirSync(dir, { recursive: true });
  const input = join(dir, "big.ndjson");
  // Small records (the fields a finding needs), 2,000 to a body, so that bodies stay under 1 MiB.
  const img = { registryHost: "big.azurecr.io", repositoryName: "big/one", digest: `sha256:${"b".repeat(64)}` };
  const bodies = [];
  for (let i = 0; i < BIG; i += 2000) {
    const batch = [];
    for (let j = i; j < Math.min(BIG, i + 2000); j++) {
      batch.push({ type: "Microsoft.Security/assessments/subAssessments", properties: {
        id: `CVE-2099-${String(j).padStart(6, "0")}`, status: { code: "Unhealthy", severity: "High" },
        timeGenerated: `2026-01-05T02:00:${String(Math.floor(j / 2000) % 60).padStart(2, "0")}Z`,
        additionalData: { assessedResourceType: "AzureContainerRegistryVulnerability", artifactDetails: img,
          softwareDetails: { packageName: "p" } } } });
    }
    bodies.push(Buffer.from(JSON.stringify(batch)));
  }
  writeLines(input, bodies);
  const t0 = Date.now();
  let r = sw(["process", "--state", join(dir, "state"), "--diff-log", join(dir, "diffs.ndjson"), "--log-level", "warn", input]);
  check(r.status === 0, `process: ${BIG} findings of one scan in ${Date.now() - t0} ms`, [r.status, r.stderr.slice(-300)], 0);
  const capped = r.stderr.match(/windows: (\d+) applied \((\d+) capped\)/);
  const cap = 100000;
  check(capped && Number(capped[2]) === Math.floor(BIG / cap) && Number(capped[1]) === Math.ceil(BIG / cap),
    "process: the window is cut at max_window_records (100000) and the rest continues in a new window", capped?.[0], `${Math.ceil(BIG / cap)} applied (${Math.floor(BIG / cap)} capped)`);
  check(/max_window_records/.test(r.stderr), "process: the cut is logged as a warning", r.stderr.slice(0, 300), "a warning naming max_window_records");
  const diffs = readLines(join(dir, "diffs.ndjson")).map((l) => JSON.parse(l));
  const newCount = diffs.reduce((n, d) => n + d.new.length, 0);
  check(newCount === BIG && diffs.every((d) => d.new.length <= cap), "process: every finding is new exactly once, no diff record over the cap",
    diffs.map((d) => d.new.length), `sum ${BIG}`);
  const t1 = Date.now();
  r = sw(["notify", "--state", join(dir, "state"), "--mail-sink", `dir:${join(dir, "mail")}`, "--mail-to", "secops@example.com",
    "--mail-rate", "6000", "--log-level", "warn", "--timeout", "100s"]);
  check(r.status === 0, `notify: the big diffs rendered in ${Date.now() - t1} ms`, [r.status, r.stderr.slice(-300)], 0);
  const files = existsSync(join(dir, "mail")) ? readdirSync(join(dir, "mail")) : [];
  let rows = 0, largest = 0;
  for (const f of files) {
    const body = readFileSync(join(dir, "mail", f));
    largest = Math.max(largest, body.length);
    const m = JSON.parse(body);
    rows += Number(m.message.internetMessageHeaders.find((h) => h.name === "x-scanwatch-new").value);
  }
  check(rows === BIG && largest <= 3670016, `notify: ${files.length} mails under mail_max_request (largest ${largest} bytes) cover every new finding`,
    { rows, largest }, { rows: BIG, largest: "<= 3670016" });
}

// ---- 3. the service, end to end: emulator -> run -> state -> mail ----
if (PARTS.includes("service")) {
  const dir = join(WORK, "service");
  mkdirSync(dir, { recursive: true });
  // The service runs with max_message_size 1,000,000: a body of exactly that size is decoded, one of
  // 1 MiB (the most Event Hubs and the emulator carry) crosses AMQP whole and is dead-lettered.
  const SVC_LIMIT = 1000000;
  // The emulator's --load reads lines as C strings: the NUL case goes through the offline paths only.
  const cases = hostileCases(SVC_LIMIT, 1048576).filter((c) => c.name !== "NUL after the JSON");
  // A scan time in 2099 would make every real rescan of its image stale: the service refuses it
  // (max_scan_time_skew after the enqueued time), and the image's real scan after it counts.
  const future = finding((P) => { P.TimeGenerated = "2099-01-01T00:00:00Z"; });
  const honest = structuredClone(future);
  honest.Properties.TimeGenerated = "2026-01-05T02:00:00Z";
  const lines = [...interleave(cases), Buffer.from(JSON.stringify(future)), Buffer.from(JSON.stringify(honest))];
  const input = join(dir, "input.ndjson");
  writeLines(input, lines);
  const want = {};
  for (const c of cases) want[c.expect] = (want[c.expect] ?? 0) + 1;
  want.bad_scan_time = 1;
  // Offline reference with the same limit.
  const ref = sw(["process", "--state", join(dir, "ref-state"), "--diff-log", join(dir, "ref.ndjson"), "--max-message-size", String(SVC_LIMIT),
    "--scan-quiet", "2s", "--log-level", "error", input]);
  check(ref.status === 0, "service reference (offline): exit status 0", ref.status, 0);
  // (offline, without enqueued times, the 2099 scan is taken: its image is compared separately)
  const expected = readLines(join(dir, "ref.ndjson")).map((l) => JSON.parse(l)).filter((d) => d.image !== imageOf(future))
    .map(diffKey).sort();

  const emu = spawn(EMULATOR, ["--port", "0", "--hub", "eh1:1", "--no-auth", "--no-control-stdin", "--log-level", "error", "--load", input],
    { stdio: ["ignore", "pipe", "pipe"] });
  children.push(emu);
  let emuOut = "", emuErr = "";
  emu.stdout.on("data", (d) => (emuOut += d));
  emu.stderr.on("data", (d) => (emuErr += d));
  const port = await (async () => { for (let i = 0; i < 150; i++) { const m = emuOut.match(/ready port=(\d+)/); if (m) return m[1]; await sleep(100); } return null; })();
  check(port !== null, "the emulator loads every hostile event", emuErr.slice(-300), "ready");
  const svc = spawn(SCANWATCH, ["run", "--connection-string", `Endpoint=sb://127.0.0.1:${port}/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=eh1;UseDevelopmentEmulator=true`,
    "--state-dir", join(dir, "state"), "--mail-sink", `dir:${join(dir, "mail")}`, "--mail-to", "secops@example.com", "--mail-rate", "6000",
    "--diff-log", join(dir, "diffs.ndjson"), "--max-message-size", String(SVC_LIMIT), "--scan-quiet", "2s", "--metrics-port", "0",
    "--metrics-bind", "127.0.0.1", "--lag-poll-interval", "200ms", "--progress-interval", "0", "--log-level", "debug"],
    { stdio: ["ignore", "ignore", "pipe"] });
  children.push(svc);
  let svcErr = "";
  svc.stderr.on("data", (d) => (svcErr += d));
  const exited = new Promise((resolve) => svc.on("exit", (code) => resolve(code)));
  let mport = null;
  for (let i = 0; i < 100 && !mport; i++) { mport = svcErr.match(/"metrics and health endpoint".*?"port":(\d+)/)?.[1]; await sleep(100); }
  const get = (path) => new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port: mport, path, timeout: 5000 }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve(b));
    }).on("error", () => resolve(""));
  });
  const total = (text, name) => text.split("\n").filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  let metrics = "";
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    metrics = await get("/metrics");
    if (total(metrics, "scanwatch_events_total{") >= lines.length && readLines(join(dir, "diffs.ndjson")).length >= expected.length) break;
    await sleep(250);
  }
  await sleep(1200);
  metrics = await get("/metrics");
  if (total(metrics, "scanwatch_events_total{") !== lines.length) {
    console.log(`service not done; /readyz: ${await get("/readyz")}`);
    for (const [name, pid] of [["scanwatch", svc.pid], ["emulator", emu.pid]]) {
      const g = spawnSync("gdb", ["-batch", "-p", String(pid), "-ex", "thread apply all bt 12"], { encoding: "utf8", timeout: 30000 });
      writeFileSync(join(dir, `${name}.stacks`), `${g.stdout}\n${g.stderr}`);
    }
  }
  check(total(metrics, "scanwatch_events_total{") === lines.length, "service: every event is processed (the partition kept flowing)",
    total(metrics, "scanwatch_events_total{"), lines.length);
  for (const reason of ["too_large", "too_deep", "bad_utf8", "not_json", "bad_scan_time"]) {
    const m = metrics.match(new RegExp(`^scanwatch_bad_events_total\\{reason="${reason}"\\} (\\d+)`, "m"));
    check(m && Number(m[1]) === want[reason], `service: metrics count ${reason}`, m?.[0], want[reason]);
  }
  const malformed = metrics.split("\n").filter((l) => l && !l.startsWith("#") && !/^[a-z_:]+(\{([a-z_]+="([^"\\\n]|\\.)*",?)*\})? [-+0-9.eEInfa]+$/.test(l));
  check(malformed.length === 0, "service: /metrics stays well-formed with hostile kinds", malformed.slice(0, 3), []);
  const skippedChildren = metrics.split("\n").filter((l) => l.startsWith("scanwatch_skipped_records_total{")).length;
  check(skippedChildren <= 513, "service: 600 distinct unknown kinds do not grow /metrics without bound", skippedChildren, "<= 513");
  check(total(metrics, "scanwatch_skipped_records_total{") === want.skipped, "service: every unknown-type record is counted", total(metrics, "scanwatch_skipped_records_total{"), want.skipped);
  const stacks = (what) => {
    for (const [name, pid] of [["scanwatch", svc.pid], ["emulator", emu.pid]]) {
      const g = spawnSync("gdb", ["-batch", "-p", String(pid), "-ex", "thread apply all bt 12"], { encoding: "utf8", timeout: 30000 });
      writeFileSync(join(dir, `${name}.${what}.stacks`), `${g.stdout}\n${g.stderr}`);
    }
  };
  svc.kill("SIGTERM");
  const code = await Promise.race([exited, sleep(25000).then(() => "timeout")]);
  if (code === "timeout") stacks("sigterm");
  writeFileSync(join(dir, "service.stderr"), svcErr);
  const notJson = svcErr.split("\n").filter(Boolean).filter((l) => { try { JSON.parse(l); return false; } catch { return true; } })
    .filter((l) => !l.startsWith("scanwatch run:"));
  check(notJson.length === 0 && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(svcErr.replace(/\n/g, "")),
    "service: every log line (debug level, hostile events included) is one JSON object, controls escaped", notJson.slice(0, 2), []);
  writeFileSync(join(dir, "emulator.stderr"), emuErr);
  check(code === 0, "service: SIGTERM, exit status 0", [code, svcErr.split("\n").slice(-6)], 0);
  emu.kill("SIGTERM");
  const all = checkDiffLog(join(dir, "diffs.ndjson"), "service");
  const fut = all.filter((d) => d.image === imageOf(future));
  check(fut.length === 1 && fut[0].scan_time.startsWith("2026-01-05") && fut[0].new.length === 1,
    "service: a 2099 scan time is refused and the image's real scan after it is reported", fut.map((d) => d.scan_time), ["2026-01-05..."]);
  const got = all.filter((d) => d.image !== imageOf(future)).map(diffKey).sort();
  check(JSON.stringify(got) === JSON.stringify(expected) && expected.length > 5, "service: the diff records equal offline processing (hostile events included)",
    { got: got.length, extra: got.filter((k) => !expected.includes(k)).slice(0, 1), missing: expected.filter((k) => !got.includes(k)).slice(0, 1) }, expected.length);
  const dl = sw(["state", "dead-letter", "--state", join(dir, "state"), "--json"]).stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const badWant = want.too_large + want.too_deep + want.bad_utf8 + want.not_json + want.bad_scan_time;
  check(dl.length === badWant, "service: every bad event is in the dead letter", dl.length, badWant);
  checkMails(join(dir, "mail"), "service");
}

console.log(failures === 0 ? "PASS" : `${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);
