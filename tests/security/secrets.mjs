#!/usr/bin/env node
// Secrets and TLS (issue 9, item 7), with the real binaries: scanwatch, the emulator, the fake
// Graph (tests/fake-graph), an https server with an untrusted certificate. Node built-ins only.
//
// 1. Secrets never leave the process: distinctive values for the SAS key (right and wrong), the
//    client secret (right and wrong), the private key PEM of a client certificate, the tokens the
//    fake Graph issues and the client assertions scanwatch signs. Every stdout, stderr, log
//    (debug level), /metrics, /healthz, /readyz answer, diff log, `scanwatch state` dump and
//    mail file of check-config, run (good and bad hub credentials), send-test-mail (secret,
//    wrong secret, certificate) and the TLS runs is searched for each of them, and for anything
//    shaped like a SAS signature (sig=), a JWT (eyJ...) or a PEM private key.
// 2. TLS verification is on by default: an emulator with a certificate from an unknown CA is
//    refused (and accepted with ca_file: the refusal is about trust); tls_verify=false is refused
//    against a real (non-emulator) endpoint; an https Graph or authority with an untrusted
//    certificate gets no request at all (the handshake fails before a secret or token is sent);
//    a plain-http Graph or authority that is not loopback is refused before connecting.
//
// usage: secrets.mjs --scanwatch BIN --emulator BIN --gen BIN --source DIR --work DIR
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const { scanwatch: SCANWATCH, emulator: EMULATOR, gen: GEN, source: SRC, work: WORK } = args;
if (!SCANWATCH || !EMULATOR || !GEN || !SRC || !WORK) {
  console.error("usage: secrets.mjs --scanwatch BIN --emulator BIN --gen BIN --source DIR --work DIR");
  process.exit(2);
}
rmSync(WORK, { recursive: true, force: true });
for (const d of ["", "bad-hub", "good", "dirsink", "tls-untrusted", "tls-noverify", "tls-trusted"]) {
  mkdirSync(join(WORK, d), { recursive: true });
}

let failures = 0;
function check(ok, what, got, want) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}\n     got:  ${JSON.stringify(got)}\n     want: ${JSON.stringify(want)}`);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on("exit", () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

// ---- the secrets ----
const b64 = (n) => randomBytes(n).toString("base64");
const SAS_KEY = b64(32); // what a real SharedAccessKey looks like (44 base64 characters)
const WRONG_SAS_KEY = b64(32);
const CLIENT_SECRET = `Zq8Q~${randomBytes(18).toString("base64url")}`; // Entra secrets look like this
const WRONG_CLIENT_SECRET = `Wx8Q~${randomBytes(18).toString("base64url")}`;
const PEM = join(SRC, "tests/data/notify/test-client.pem");
const keyLines = readFileSync(PEM, "utf8").split("-----BEGIN PRIVATE KEY-----")[1]
  .split("-----END PRIVATE KEY-----")[0].split("\n").map((l) => l.trim()).filter((l) => l.length >= 40);
const secrets = [
  // without their base64 padding too: a key cut at its '=' must not show either
  ["SAS key", SAS_KEY.replace(/=+$/, "")], ["wrong SAS key", WRONG_SAS_KEY.replace(/=+$/, "")], ["client secret", CLIENT_SECRET],
  ["wrong client secret", WRONG_CLIENT_SECRET],
  ...keyLines.map((l, i) => [`private key PEM line ${i + 1}`, l]),
];
// Shapes of credentials whose exact value the test cannot know in advance.
const shapes = [
  ["a SAS token signature", /\bsig=/i], ["a SAS token", /SharedAccessSignature sr=/i],
  ["a JWT (access token or client assertion)", /eyJ[A-Za-z0-9_-]{8,}\.eyJ/], ["a PEM private key", /PRIVATE KEY/],
];
const outputs = []; // [name, text]: everything scanwatch printed or wrote
const record = (name, text) => outputs.push([name, String(text ?? "")]);

function run(name, argv, { env = {}, timeout = 30000 } = {}) {
  console.log(`  ... ${name}`);
  const r = spawnSync(SCANWATCH, argv, { env: { ...process.env, ...env }, timeout, encoding: "utf8" });
  record(`${name}: stdout`, r.stdout);
  record(`${name}: stderr`, r.stderr);
  return r;
}
// Like run, without blocking the event loop (for servers in this process).
async function runAsync(name, argv, { env = {} } = {}) {
  const p = start(name, SCANWATCH, argv, env);
  const r = await Promise.race([p.done, sleep(30000).then(() => ({ code: "timeout" }))]);
  if (r.code === "timeout") p.kill("SIGKILL");
  record(`${name}: stdout`, p.out);
  record(`${name}: stderr`, p.err);
  return { status: r.code, stdout: p.out, stderr: p.err };
}
function start(name, bin, argv, env = {}) {
  console.log(`  ... ${name}`);
  const p = spawn(bin, argv, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  children.push(p);
  p.out = "";
  p.err = "";
  p.stdout.on("data", (d) => (p.out += d));
  p.stderr.on("data", (d) => (p.err += d));
  p.done = new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
  p.name = name;
  return p;
}
async function waitFor(fn, ms, step = 100) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await sleep(step);
  }
  return null;
}
function get(port, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", (e) => resolve({ status: 0, body: String(e) }));
  });
}
async function stopService(p) {
  if (p.exitCode === null) p.kill("SIGTERM");
  const r = await Promise.race([p.done, sleep(25000).then(() => ({ code: "timeout" }))]);
  record(`${p.name}: stdout`, p.out);
  record(`${p.name}: stderr`, p.err);
  return r;
}
async function scrape(p, port, what) {
  for (const path of ["/metrics", "/healthz", "/readyz"]) {
    const r = await get(port, path);
    record(`${what} ${path}`, r.body);
  }
}
const metricsPort = (p) => {
  const m = p.err.match(/"msg":"metrics and health endpoint".*?"port":(\d+)/);
  return m ? Number(m[1]) : null;
};

// ---- peers ----
spawnSync(join(SRC, "tests/emulator/make-test-certs.sh"), [join(WORK, "certs")], { stdio: "inherit" });
const CERTS = join(WORK, "certs");
const stream = join(WORK, "stream.ndjson");
spawnSync(GEN, ["--seed", "5", "--images", "3", "--findings", "6", "--rescans", "1", "--bad", "0.1",
  "--other", "0.1", "--out", stream]);

async function startEmulator(extra) {
  const e = start("emulator", EMULATOR, ["--port", "0", "--hub", "eh1:2", "--sas-key", `scanwatch=${SAS_KEY}`,
    "--no-control-stdin", "--log-level", "error", ...extra]);
  e.port = await waitFor(() => (e.out.match(/ready port=(\d+)/) || [])[1], 15000);
  if (!e.port) throw new Error(`emulator did not start: ${e.err}`);
  return e;
}
async function startFakeGraph() {
  const g = start("fake-graph", "node", [join(SRC, "tests/fake-graph/fake-graph.js"), "--client-secret", CLIENT_SECRET,
    "--cert", PEM, "--tenant", "test-tenant", "--client-id", "test-client", "--sender", "alerts@example.com"]);
  g.port = await waitFor(() => (g.out.match(/PORT (\d+)/) || [])[1], 15000);
  if (!g.port) throw new Error(`fake graph did not start: ${g.err}`);
  return g;
}
const emu = await startEmulator(["--load", stream]);
const fg = await startFakeGraph();
const FG = `http://127.0.0.1:${fg.port}`;
const connStr = (key, extra = ";UseDevelopmentEmulator=true", host = "127.0.0.1", port = emu.port) =>
  `Endpoint=sb://${host}:${port}/;SharedAccessKeyName=scanwatch;SharedAccessKey=${key};EntityPath=eh1${extra}`;
const graphArgs = ["--mail-sender", "alerts@example.com", "--tenant-id", "test-tenant", "--client-id", "test-client",
  "--authority-host", FG, "--graph-base-url", FG];
const connFile = join(WORK, "connection-string");
writeFileSync(connFile, connStr(SAS_KEY) + "\n", { mode: 0o600 });
const secretFile = join(WORK, "client-secret");
writeFileSync(secretFile, CLIENT_SECRET + "\n", { mode: 0o600 });

// ---- check-config, every source of a secret ----
{
  const yaml = join(WORK, "scanwatch.yaml");
  writeFileSync(yaml, `connection_string: "${connStr(SAS_KEY)}"\nclient_secret: "${CLIENT_SECRET}"\nlog_level: debug\n`);
  for (const [what, argv, env] of [
    ["flags", ["--connection-string", connStr(SAS_KEY), "--client-secret", CLIENT_SECRET], {}],
    ["files", ["--connection-string-file", connFile, "--client-secret-file", secretFile], {}],
    ["env", [], { SCANWATCH_CONNECTION_STRING: connStr(SAS_KEY), SCANWATCH_CLIENT_SECRET: CLIENT_SECRET }],
    ["yaml", ["--config", yaml], {}],
  ]) {
    for (const fmt of [[], ["--json"]]) {
      const r = run(`check-config ${what} ${fmt.join("")}`, ["check-config", "--log-level", "debug", ...argv, ...fmt], { env });
      check(r.status === 0 && /\*\*\*/.test(r.stdout), `check-config (${what}${fmt.length ? ", json" : ""}) masks secrets`, r.status, 0);
    }
  }
  // Errors about secrets name the setting, not the value.
  let r = run("check-config bad secret file", ["check-config", "--client-secret-file", join(WORK, "missing")]);
  check(r.status === 2 && /client_secret/.test(r.stderr), "a missing secret file is named", r.stderr.trim(), "client_secret ...");
  r = run("run bad connection string", ["run", "--connection-string", `Endpoint=sb://127.0.0.1:1/;SharedAccessKey=${SAS_KEY};EntityPath=x`,
    "--metrics-port", "-1", "--mail-to", "a@example.com", "--mail-sink", `dir:${join(WORK, "m0")}`, "--state-dir", join(WORK, "s0")]);
  check(r.status === 2 && /SharedAccessKeyName/.test(r.stderr), "a malformed connection string is refused naming the problem", r.stderr.trim(), "...SharedAccessKeyName...");
  // The key pasted without "SharedAccessKey=": it splits at its '=' padding into an unknown part.
  r = run("run bare key", ["run", "--connection-string", `Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;${SAS_KEY};EntityPath=x`,
    "--metrics-port", "-1", "--mail-to", "a@example.com", "--mail-sink", `dir:${join(WORK, "m0")}`, "--state-dir", join(WORK, "s0")]);
  check(r.status === 2 && /unknown part/.test(r.stderr), "a bare key in the connection string is refused without echoing it", r.stderr.trim().slice(-200), "unknown part (not shown)");
}

// ---- send-test-mail: client secret, wrong secret, certificate ----
{
  let r = run("send-test-mail secret", ["send-test-mail", "--to", "you@example.com", "--log-level", "debug", ...graphArgs],
    { env: { SCANWATCH_CLIENT_SECRET: CLIENT_SECRET } });
  check(r.status === 0 && /ok {4}sendMail/.test(r.stdout), "send-test-mail with the client secret works", r.stdout, "ok sendMail");
  r = run("send-test-mail wrong secret", ["send-test-mail", "--to", "you@example.com", "--log-level", "debug", ...graphArgs,
    "--client-secret", WRONG_CLIENT_SECRET]);
  check(r.status === 1 && /FAIL {2}token/.test(r.stdout), "send-test-mail with a wrong secret fails at the token", r.stdout, "FAIL token");
  r = run("send-test-mail certificate", ["send-test-mail", "--to", "you@example.com", "--log-level", "debug", ...graphArgs,
    "--client-certificate", PEM]);
  check(r.status === 0 && /ok {4}sendMail/.test(r.stdout), "send-test-mail with the certificate works", r.stdout, "ok sendMail");
}

// ---- run with the wrong SAS key (debug log, metrics) ----
{
  const dir = join(WORK, "bad-hub");
  const p = start("run wrong SAS key", SCANWATCH, ["run", "--connection-string", connStr(WRONG_SAS_KEY), "--state-dir", join(dir, "state"),
    "--mail-to", "a@example.com", "--mail-sink", `dir:${join(dir, "mail")}`, "--metrics-port", "0", "--metrics-bind", "127.0.0.1",
    "--log-level", "debug", "--reconnect-backoff-min", "100ms", "--reconnect-backoff-max", "200ms"]);
  const port = await waitFor(() => metricsPort(p), 10000);
  await waitFor(() => p.exitCode !== null || /put-token|401|auth/i.test(p.err), 10000);
  if (port && p.exitCode === null) await scrape(p, port, "wrong SAS key");
  const r = await stopService(p);
  check(/SW_E_AUTH|401|unauthorized/i.test(p.err), "the wrong SAS key is reported as an authorization failure", p.err.slice(-300), "SW_E_AUTH");
  check(r.code !== "timeout", "the run with a wrong SAS key stops", r, "exit");
}

// ---- run with good credentials: events in, mails to the fake Graph (debug log, metrics, dumps) ----
{
  const dir = join(WORK, "good");
  const p = start("run", SCANWATCH, ["run", "--connection-string-file", connFile, "--state-dir", join(dir, "state"),
    "--mail-sink", "graph", ...graphArgs, "--mail-to", "secops@example.com", "--mail-rate", "6000",
    "--diff-log", join(dir, "diffs.ndjson"), "--scan-quiet", "1s", "--metrics-port", "0", "--metrics-bind", "127.0.0.1",
    "--lag-poll-interval", "200ms", "--log-level", "debug"], { SCANWATCH_CLIENT_SECRET_FILE: secretFile });
  const port = await waitFor(() => metricsPort(p), 10000);
  const diffs = () => (existsSync(join(dir, "diffs.ndjson")) ? readFileSync(join(dir, "diffs.ndjson"), "utf8").split("\n").filter(Boolean).length : 0);
  const mails = async () => JSON.parse((await get(fg.port, "/_control/stats")).body).mails;
  const done = await waitFor(async () => diffs() >= 6 && (await mails()) >= 7, 30000, 250); // + the send-test-mail mails
  check(done !== null, "the service mails every diff record through the fake Graph", { diffs: diffs(), mails: await mails() }, ">= 6 diffs, mails");
  if (port) await scrape(p, port, "run");
  const r = await stopService(p);
  check(r.code === 0, "the service stops on SIGTERM with status 0", r, { code: 0 });
  record("diff log", existsSync(join(dir, "diffs.ndjson")) ? readFileSync(join(dir, "diffs.ndjson"), "utf8") : "");
  for (const what of ["images", "checkpoints", "outbox", "dead-letter"]) {
    run(`state ${what}`, ["state", what, "--state", join(dir, "state"), "--json"]);
    run(`state ${what} (text)`, ["state", what, "--state", join(dir, "state")]);
  }
  // The client assertions scanwatch signed are credentials too: they must appear nowhere.
  const treq = JSON.parse((await get(fg.port, "/_control/token-requests")).body);
  treq.filter((t) => t.assertion).forEach((t, i) => secrets.push([`client assertion ${i + 1}`, t.assertion]));
  check(treq.some((t) => t.kind === "certificate" && t.ok), "a certificate assertion was issued (and is searched for)", treq.map((t) => t.kind), "certificate");
}

// ---- run with a wrong Graph client secret: the notifier's token failures (debug log, metrics) ----
{
  const dir = join(WORK, "bad-graph");
  mkdirSync(dir, { recursive: true });
  const p = start("run wrong client secret", SCANWATCH, ["run", "--connection-string", connStr(SAS_KEY), "--state-dir", join(dir, "state"),
    "--mail-sink", "graph", ...graphArgs, "--client-secret", WRONG_CLIENT_SECRET, "--mail-to", "secops@example.com",
    "--scan-quiet", "1s", "--metrics-port", "0", "--metrics-bind", "127.0.0.1", "--lag-poll-interval", "200ms",
    "--mail-backoff-min", "100ms", "--mail-backoff-max", "200ms", "--log-level", "debug"]);
  const port = await waitFor(() => metricsPort(p), 10000);
  const failed = await waitFor(() => /invalid_client|AADSTS7000215|401/.test(p.err), 30000, 200);
  check(failed !== null, "the service reports the wrong client secret (token refused)", p.err.slice(-300), "invalid_client");
  if (port) await scrape(p, port, "wrong client secret");
  await stopService(p);
}

// ---- a full outbox and dead letter: the same stream processed offline (no notifier) ----
{
  const st = join(WORK, "offline-state");
  const r = run("process", ["process", "--state", st, "--diff-log", join(WORK, "offline-diffs.ndjson"), "--log-level", "debug",
    "--connection-string", connStr(SAS_KEY), "--client-secret", CLIENT_SECRET, stream]);
  check(r.status === 0, "process (with secrets set) runs", r.stderr.slice(-300), 0);
  record("offline diff log", readFileSync(join(WORK, "offline-diffs.ndjson"), "utf8"));
  for (const what of ["outbox", "dead-letter"]) {
    const d = run(`offline state ${what}`, ["state", what, "--state", st, "--json"]);
    check(d.stdout.split("\n").filter(Boolean).length > 0, `the offline ${what} has entries to search`, d.stdout.length, "> 0");
  }
}

// ---- a dir: mail sink writes its files 0700 and holds no secret ----
{
  const dir = join(WORK, "dirsink");
  const r = run("notify dir sink", ["notify", "--state", join(WORK, "offline-state"), "--mail-sink", `dir:${join(dir, "mail")}`,
    "--mail-to", "secops@example.com", "--mail-rate", "6000", "--log-level", "debug", "--timeout", "60s"]);
  check(r.status === 0, "scanwatch notify (dir: sink) runs", r.stderr.slice(-300), 0);
  const st = spawnSync("stat", ["-c", "%a", join(WORK, "good", "state")], { encoding: "utf8" }).stdout.trim();
  check(st === "700", "state_dir is created 0700", st, "700");
  if (existsSync(join(dir, "mail"))) {
    const m = spawnSync("stat", ["-c", "%a", join(dir, "mail")], { encoding: "utf8" }).stdout.trim();
    check(m === "700", "the dir: mail sink directory is created 0700", m, "700");
    for (const f of readdirSync(join(dir, "mail"))) record(`mail file ${f}`, readFileSync(join(dir, "mail", f), "utf8"));
  }
}

// ---- TLS to the hub: verification on by default ----
{
  const tlsEmu = await startEmulator(["--tls-cert", join(CERTS, "server.pem"), "--tls-key", join(CERTS, "server.key")]);
  const base = (dir) => ["--state-dir", join(WORK, dir, "state"), "--mail-to", "a@example.com", "--mail-sink", `dir:${join(WORK, dir, "mail")}`,
    "--metrics-port", "0", "--metrics-bind", "127.0.0.1", "--log-level", "debug"];
  // No UseDevelopmentEmulator: TLS with full verification, as against Azure.
  const cs = connStr(SAS_KEY, "", "localhost", tlsEmu.port);
  let r = run("run TLS untrusted", ["run", "--connection-string", cs, ...base("tls-untrusted")], { timeout: 20000 });
  check(r.status === 1 && /certificate verify failed/.test(r.stderr), "an emulator whose CA is not trusted is refused",
    r.stderr.split("\n").filter((l) => /certificate/.test(l))[0] ?? r.stderr.slice(-300), "exit 1, certificate verify failed");
  r = run("run tls_verify false", ["run", "--connection-string", cs, "--tls-verify", "false", ...base("tls-noverify")], { timeout: 20000 });
  check(r.status === 2 && /tls_verify=false/.test(r.stderr), "tls_verify=false is refused for a real endpoint", r.stderr.slice(-300), "exit 2, tls_verify=false");
  const p = start("run TLS with ca_file", SCANWATCH, ["run", "--connection-string", cs, "--ca-file", join(CERTS, "ca.pem"), ...base("tls-trusted")]);
  const port = await waitFor(() => metricsPort(p), 10000);
  const ready = port && (await waitFor(async () => (await get(port, "/readyz")).status === 200, 15000));
  check(Boolean(ready), "the same emulator is accepted with its CA as ca_file (the refusal was about trust)", p.err.slice(-300), "/readyz 200");
  if (port) await scrape(p, port, "TLS run");
  await stopService(p);
  tlsEmu.kill("SIGTERM");
}

// ---- Graph and the authority over https with an untrusted certificate; plain http elsewhere ----
{
  let requests = 0;
  const srv = https.createServer({ cert: readFileSync(join(CERTS, "server.pem")), key: readFileSync(join(CERTS, "server.key")) },
    (req, res) => {
      requests++;
      res.writeHead(500);
      res.end();
    });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const HTTPS = `https://localhost:${srv.address().port}`;
  let r = await runAsync("send-test-mail untrusted authority", ["send-test-mail", "--to", "you@example.com", ...graphArgs,
    "--authority-host", HTTPS, "--client-secret", CLIENT_SECRET, "--log-level", "debug"]);
  check(r.status === 1 && /certificate/i.test(r.stdout + r.stderr), "an authority with an untrusted certificate is refused",
    r.stdout.split("\n").find((l) => /FAIL/.test(l)), "FAIL ... certificate");
  r = await runAsync("send-test-mail untrusted graph", ["send-test-mail", "--to", "you@example.com", ...graphArgs,
    "--graph-base-url", HTTPS, "--client-secret", CLIENT_SECRET, "--log-level", "debug"]);
  check(r.status === 1 && /certificate/i.test(r.stdout + r.stderr), "a Graph with an untrusted certificate is refused",
    r.stdout.split("\n").find((l) => /FAIL/.test(l)), "FAIL ... certificate");
  check(requests === 0, "the untrusted server never got a request (no secret, no token sent)", requests, 0);
  srv.close();
  // Plain http to something that is not loopback would send the secret and tokens in clear text.
  for (const [what, flag] of [["graph_base_url", "--graph-base-url"], ["authority_host", "--authority-host"]]) {
    r = run(`send-test-mail http ${what}`, ["send-test-mail", "--to", "you@example.com", ...graphArgs,
      flag, "http://graph.example.com", "--client-secret", CLIENT_SECRET]);
    check(r.status !== 0 && new RegExp(`${what} .* must be an https:// URL`).test(r.stdout + r.stderr),
      `plain http ${what} off loopback is refused`, (r.stdout + r.stderr).trim().slice(-300), `${what} must be https`);
  }
}

// ---- the search ----
emu.kill("SIGTERM");
fg.stdin.end();
function search(list) {
  const hits = [];
  for (const [name, text] of list) {
    for (const [what, value] of secrets) {
      if (text.includes(value)) hits.push([`${what} is absent from ${name}`, "found"]);
    }
    for (const [what, re] of shapes) {
      const m = text.match(re);
      if (m) hits.push([`nothing shaped like ${what} in ${name}`, text.slice(Math.max(0, m.index - 60), m.index + 20)]);
    }
  }
  return hits;
}
// The search itself must find what it looks for.
const canary = search([["canary", `a ${WRONG_CLIENT_SECRET} b`], ["canary2", "x sig=abc"]]);
check(canary.length === 2, "the search finds a planted secret and a planted signature", canary.length, 2);
for (const [what, got] of search(outputs)) check(false, what, got, "absent");
const searched = outputs.reduce((n, [, text]) => n + text.length, 0);
check(outputs.length > 40 && searched > 20000, `searched ${outputs.length} outputs (${searched} bytes) for ${secrets.length} secrets and ${shapes.length} shapes`,
  { outputs: outputs.length, bytes: searched }, "> 40 outputs, > 20000 bytes");
console.log(failures === 0 ? "PASS" : `${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);
