// Faithfulness test: Microsoft's unmodified @azure/event-hubs SDK (pinned in
// package-lock.json) against scanwatch-emulator. Run by ctest (tests/emulator.cmake):
//   node emulator-faithfulness.mjs --emulator PATH [--tls CERTDIR]
// Plain mode uses "UseDevelopmentEmulator=true" (TCP, no TLS); TLS mode drops that
// slug so the SDK connects with TLS, trusting the test CA via NODE_EXTRA_CA_CERTS.
// The script starts its own emulator on an ephemeral loopback port and stops it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
let sdk;
try {
  sdk = await import("@azure/event-hubs");
} catch (e) {
  console.error(
    `FAIL: cannot load @azure/event-hubs (${e.code ?? e.message}).\n` +
      `Install the pinned SDK first: (cd ${here} && npm ci) — scripts/test does this.`,
  );
  process.exit(1);
}
const { EventHubProducerClient, EventHubConsumerClient, earliestEventPosition, latestEventPosition } = sdk;
// The SDK's own key->partition mapper, to check the emulator routes keys like the service.
const require = createRequire(import.meta.url);
const sdkDir = dirname(require.resolve("@azure/event-hubs/package.json"));
const { mapPartitionKeyToId } = await import(
  join(sdkDir, "dist", "esm", "impl", "partitionKeyToIdMapper.js")
);

const args = process.argv.slice(2);
const argOf = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const emulatorPath = argOf("--emulator");
const tlsDir = argOf("--tls");
if (!emulatorPath) {
  console.error("usage: node emulator-faithfulness.mjs --emulator PATH [--tls CERTDIR]");
  process.exit(2);
}

let failures = 0;
let checks = 0;
function check(cond, what, got, want) {
  checks++;
  if (cond) {
    return;
  }
  failures++;
  const detail =
    got !== undefined || want !== undefined
      ? ` (got ${JSON.stringify(got)}, want ${JSON.stringify(want)})`
      : "";
  console.error(`FAIL: ${what}${detail}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred, ms, what, poll) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (poll) {
      await poll();
    }
    if (pred()) {
      return true;
    }
    await sleep(50);
  }
  console.error(`timeout after ${ms} ms waiting for ${what}`);
  return false;
}

// ---- start the emulator ----
const HUB = "faith";
const KEY_NAME = "RootManageSharedAccessKey";
const KEY = randomBytes(24).toString("base64");
const emuArgs = [
  "--port", "0", "--hub", `${HUB}:4:cg2`, "--hub", "other:2",
  "--sas-key", `${KEY_NAME}=${KEY}`, "--control-port", "0", "--no-control-stdin",
  "--log-level", process.env.EMU_LOG_LEVEL ?? "warn",
];
if (tlsDir) {
  emuArgs.push("--tls-cert", join(tlsDir, "server.pem"), "--tls-key", join(tlsDir, "server.key"));
}
const emu = spawn(emulatorPath, emuArgs, { stdio: ["ignore", "pipe", "inherit"] });
const [port, controlPort] = await new Promise((resolve, reject) => {
  let out = "";
  emu.stdout.on("data", (d) => {
    out += d.toString();
    const m = /ready port=(\d+) control-port=(\d+)/.exec(out);
    if (m) {
      resolve([Number(m[1]), Number(m[2])]);
    }
  });
  emu.on("exit", (code) => reject(new Error(`emulator exited with ${code} before ready`)));
  setTimeout(() => reject(new Error("emulator not ready within 10 s")), 10000);
});
const stopEmulator = () => {
  try {
    emu.kill("SIGTERM");
  } catch {}
};
process.on("exit", stopEmulator);

// One command on the emulator's control channel (docs/emulator.md); resolves to its reply.
async function control(cmd) {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const sock = net.connect(controlPort, "127.0.0.1", () => sock.write(`${cmd}\n`));
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        sock.end();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on("error", reject);
  });
}

const host = "127.0.0.1";
const slug = tlsDir ? "" : ";UseDevelopmentEmulator=true";
const connStr = (key) =>
  `Endpoint=sb://${host}:${port}/;SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${key}${slug}`;
const clientOptions = { retryOptions: { maxRetries: 1, retryDelayInMs: 200, timeoutInMs: 10000 } };
console.log(`emulator on ${host}:${port} (${tlsDir ? "TLS" : "plain"})`);
if (tlsDir) {
  // The SDK must really be on TLS: the port completes a verified handshake with the test CA.
  const tls = await import("node:tls");
  const authorized = await new Promise((resolve) => {
    const sock = tls.connect({ host, port, ca: readFileSync(join(tlsDir, "ca.pem")) }, () => {
      resolve(sock.authorized);
      sock.destroy();
    });
    sock.on("error", (e) => resolve(`error: ${e.message}`));
  });
  check(authorized === true, "TLS handshake verified against the test CA", authorized, true);
}

const startedAt = Date.now();
const producer = new EventHubProducerClient(connStr(KEY), HUB, clientOptions);

// ---- management ----
const props = await producer.getEventHubProperties();
check(props.name === HUB, "getEventHubProperties name", props.name, HUB);
check(
  JSON.stringify(props.partitionIds) === JSON.stringify(["0", "1", "2", "3"]),
  "getEventHubProperties partitionIds",
  props.partitionIds,
  ["0", "1", "2", "3"],
);
check(
  props.createdOn instanceof Date && Math.abs(props.createdOn.getTime() - startedAt) < 60000,
  "createdOn is a recent Date",
  String(props.createdOn),
);
const ids = await producer.getPartitionIds();
check(JSON.stringify(ids) === JSON.stringify(props.partitionIds), "getPartitionIds", ids);
const empty = await producer.getPartitionProperties("3");
check(empty.isEmpty === true, "empty partition isEmpty", empty.isEmpty, true);
check(empty.lastEnqueuedSequenceNumber === -1, "empty lastEnqueuedSequenceNumber",
  empty.lastEnqueuedSequenceNumber, -1);
check(empty.partitionId === "3", "partitionId", empty.partitionId, "3");

// ---- sends: hub (round-robin), partition, partition key ----
let nextId = 0;
const sent = new Map(); // id -> {partition?: string, key?: string}
async function sendBatch(opts, n, tag) {
  const batch = await producer.createBatch(opts);
  check(batch.maxSizeInBytes === 1048576, "createBatch uses the attach max-message-size",
    batch.maxSizeInBytes, 1048576);
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    const ok = batch.tryAdd({ body: { id, tag, pad: "x".repeat(100) }, properties: { id } });
    check(ok, `tryAdd event ${id}`);
    sent.set(id, { ...opts, tag });
  }
  await producer.sendBatch(batch);
}
// Each hub-addressed batch goes to one partition, the next batch to the next one.
for (let i = 0; i < 4; i++) {
  await sendBatch({}, 2, "hub");
}
await sendBatch({ partitionId: "2" }, 5, "partition");
const PKEY = "image-sha256:0123456789abcdef";
await sendBatch({ partitionKey: PKEY }, 5, "keyed");
const keyedPartition = String(mapPartitionKeyToId(PKEY, 4));
// A single event (not created with createBatch) goes through the same path.
await producer.sendBatch([{ body: { id: nextId, tag: "array" } }], { partitionId: "1" });
sent.set(nextId++, { partitionId: "1", tag: "array" });
const total = sent.size;

// Partition properties reflect the sends.
const p2 = await producer.getPartitionProperties("2");
check(p2.isEmpty === false, "partition 2 not empty after sends", p2.isEmpty, false);

// ---- subscribe from earliest on all partitions ----
const consumer = new EventHubConsumerClient("$Default", connStr(KEY), HUB, clientOptions);
const received = []; // {partition, id, seq, offset, time, key}
const subErrors = [];
const sub = consumer.subscribe(
  {
    processEvents: async (events, ctx) => {
      for (const e of events) {
        received.push({
          partition: ctx.partitionId,
          id: e.body?.id,
          tag: e.body?.tag,
          seq: e.sequenceNumber,
          offset: e.offset,
          time: e.enqueuedTimeUtc,
          key: e.partitionKey,
        });
      }
    },
    processError: async (err) => subErrors.push(err),
  },
  { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
);
await waitFor(() => received.length >= total, 20000, `${total} events`);
await sleep(1500); // duplicates would show up now
await sub.close();
check(received.length === total, "subscribe received every event exactly once",
  received.length, total);
const seenIds = new Set(received.map((r) => r.id));
check(seenIds.size === total, "no duplicate ids", seenIds.size, total);
for (const [id, info] of sent) {
  const r = received.find((x) => x.id === id);
  if (!r) {
    check(false, `event ${id} received`);
    continue;
  }
  if (info.partitionId !== undefined) {
    check(r.partition === info.partitionId, `event ${id} in requested partition`, r.partition,
      info.partitionId);
  }
  if (info.partitionKey !== undefined) {
    check(r.partition === keyedPartition, `keyed event ${id} in the SDK's key partition`,
      r.partition, keyedPartition);
    check(r.key === PKEY, `keyed event ${id} carries partitionKey`, r.key, PKEY);
  }
  check(typeof r.offset === "string", `event ${id} offset is a string`, typeof r.offset);
  check(r.time instanceof Date && r.time.getTime() >= startedAt - 5000 &&
      r.time.getTime() <= Date.now() + 5000,
    `event ${id} enqueuedTimeUtc plausible`, String(r.time));
}
const hubEvents = received.filter((r) => r.tag === "hub");
const hubPartitions = new Set(hubEvents.map((r) => r.partition));
check(hubPartitions.size === 4, "hub-addressed batches spread over all partitions (round-robin per batch)",
  [...hubPartitions], ["0", "1", "2", "3"]);
const byPartition = new Map();
for (const r of received) {
  if (!byPartition.has(r.partition)) {
    byPartition.set(r.partition, []);
  }
  byPartition.get(r.partition).push(r);
}
for (const [pid, list] of byPartition) {
  list.forEach((r, i) => {
    check(r.seq === i, `partition ${pid} sequence numbers 0,1,2.. in order`, r.seq, i);
    if (i > 0) {
      check(BigInt(r.offset) > BigInt(list[i - 1].offset),
        `partition ${pid} offsets increase`, r.offset, `> ${list[i - 1].offset}`);
      check(r.time.getTime() >= list[i - 1].time.getTime(),
        `partition ${pid} enqueued times non-decreasing`);
    }
  });
  const pp = await producer.getPartitionProperties(pid);
  const last = list[list.length - 1];
  check(pp.lastEnqueuedSequenceNumber === last.seq, `partition ${pid} lastEnqueuedSequenceNumber`,
    pp.lastEnqueuedSequenceNumber, last.seq);
  check(pp.lastEnqueuedOffset === last.offset, `partition ${pid} lastEnqueuedOffset`,
    pp.lastEnqueuedOffset, last.offset);
  check(pp.beginningSequenceNumber === 0, `partition ${pid} beginningSequenceNumber`,
    pp.beginningSequenceNumber, 0);
}
check(subErrors.length === 0, "no subscribe errors", subErrors.map((e) => e.message));

// ---- subscribe from a position (offset / sequence number, exclusive / inclusive) ----
const part2 = byPartition.get("2") ?? [];
async function readFrom(startPosition, want, label) {
  const got = [];
  const errs = [];
  const s = consumer.subscribe(
    "2",
    {
      processEvents: async (events) => {
        for (const e of events) {
          got.push(e.sequenceNumber);
        }
      },
      processError: async (err) => errs.push(err.message),
    },
    { startPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
  );
  await waitFor(() => got.length >= want.length, 10000, label);
  await sleep(300);
  await s.close();
  check(JSON.stringify(got) === JSON.stringify(want), label, got, want);
  check(errs.length === 0, `${label}: no errors`, errs);
}
if (part2.length >= 4) {
  const seqs = part2.map((r) => r.seq);
  await readFrom({ offset: part2[1].offset }, seqs.slice(2), "from offset (exclusive)");
  await readFrom({ offset: part2[1].offset, isInclusive: true }, seqs.slice(1),
    "from offset (inclusive)");
  await readFrom({ sequenceNumber: part2[2].seq }, seqs.slice(3), "from sequence (exclusive)");
  await readFrom({ sequenceNumber: part2[2].seq, isInclusive: true }, seqs.slice(2),
    "from sequence (inclusive)");
  await readFrom({ enqueuedOn: new Date(part2[0].time.getTime() - 1) }, seqs,
    "from enqueued time");
} else {
  check(false, "partition 2 has enough events for position tests", part2.length, ">= 4");
}

// ---- subscribe from latest: only events sent after the receiver attached ----
let infoCache = "";
{
  const got = [];
  const s = consumer.subscribe(
    "3",
    {
      processEvents: async (events) => {
        for (const e of events) {
          got.push(e.body?.id);
        }
      },
      processError: async () => {},
    },
    { startPosition: latestEventPosition, maxBatchSize: 10, maxWaitTimeInSeconds: 1 },
  );
  // Send only once the receiver is attached: the emulator's "info" lists receivers per partition.
  await waitFor(() => infoCache.includes("p3=") && /p3=[^ ]*\/r[1-9]/.test(infoCache), 10000,
    "receiver attached to partition 3", async () => {
      infoCache = await control(`info ${HUB}`);
    });
  await producer.sendBatch([{ body: { id: "latest-1" } }], { partitionId: "3" });
  await waitFor(() => got.length >= 1, 10000, "latest event");
  await sleep(300);
  await s.close();
  check(JSON.stringify(got) === JSON.stringify(["latest-1"]), "from latest: only new events", got,
    ["latest-1"]);
}

// ---- an unknown partition id is an error ----
{
  let err;
  try {
    await producer.getPartitionProperties("9");
  } catch (e) {
    err = e;
  }
  check(err !== undefined, "getPartitionProperties of partition 9 of 4 fails", err && err.message);
}

// ---- ownerLevel: a higher owner level takes the partition ----
{
  const cgConsumer = new EventHubConsumerClient("cg2", connStr(KEY), HUB, clientOptions);
  const low = { events: 0, errors: [], closes: [] };
  const high = { events: 0, errors: [], closes: [] };
  const handlers = (st) => ({
    processEvents: async (events) => {
      st.events += events.length;
    },
    processError: async (err) => st.errors.push(err),
    processClose: async (reason) => st.closes.push(reason),
  });
  const sLow = cgConsumer.subscribe("0", handlers(low),
    { startPosition: earliestEventPosition, ownerLevel: 1, maxBatchSize: 50, maxWaitTimeInSeconds: 1 });
  await waitFor(() => low.events > 0, 10000, "low owner level receiver");
  const cgConsumer2 = new EventHubConsumerClient("cg2", connStr(KEY), HUB, clientOptions);
  const sHigh = cgConsumer2.subscribe("0", handlers(high),
    { startPosition: earliestEventPosition, ownerLevel: 2, maxBatchSize: 50, maxWaitTimeInSeconds: 1 });
  await waitFor(() => high.events > 0, 10000, "high owner level receiver");
  await waitFor(() => low.errors.length > 0 || low.closes.length > 0, 10000,
    "low owner level receiver losing the partition");
  const stolen = low.errors.some((e) => e.code === "ReceiverDisconnectedError") ||
    low.closes.includes("OwnershipLost");
  check(stolen, "lower ownerLevel subscriber loses the partition (ReceiverDisconnectedError)",
    { errors: low.errors.map((e) => `${e.code}: ${e.message}`), closes: low.closes });
  // Events published now reach only the new owner.
  const before = high.events;
  const lowBefore = low.events;
  await producer.sendBatch([{ body: { id: "after-steal" } }], { partitionId: "0" });
  await waitFor(() => high.events > before, 10000, "new owner receiving new events");
  check(high.events === before + 1, "higher ownerLevel subscriber receives new events",
    high.events, before + 1);
  check(low.events === lowBefore, "old owner receives nothing after losing the partition",
    low.events, lowBefore);
  check(high.errors.length === 0, "new owner has no errors", high.errors.map((e) => e.message));
  await sLow.close();
  await sHigh.close();
  await cgConsumer.close();
  await cgConsumer2.close();
}

// ---- a wrong SAS key is rejected with an authorization error ----
{
  const bad = new EventHubProducerClient(connStr(KEY + "x"), HUB,
    { retryOptions: { maxRetries: 0, timeoutInMs: 10000 } });
  let err;
  try {
    await bad.getEventHubProperties();
  } catch (e) {
    err = e;
  }
  check(err !== undefined, "wrong SAS key: getEventHubProperties fails");
  const authError = err !== undefined &&
    (err.code === "UnauthorizedError" || /unauthori[sz]ed/i.test(`${err.name} ${err.message}`));
  check(authError, "wrong SAS key: authorization error", err && `${err.code}: ${err.message}`,
    "UnauthorizedError");
  let sendErr;
  try {
    await bad.sendBatch([{ body: "x" }]);
  } catch (e) {
    sendErr = e;
  }
  check(sendErr !== undefined && sendErr.code === "UnauthorizedError",
    "wrong SAS key: sendBatch fails with UnauthorizedError", sendErr && sendErr.code,
    "UnauthorizedError");
  await bad.close();
}

// ---- unknown hub: not found ----
{
  const nf = new EventHubProducerClient(connStr(KEY), "no-such-hub",
    { retryOptions: { maxRetries: 0, timeoutInMs: 10000 } });
  let err;
  try {
    await nf.getEventHubProperties();
  } catch (e) {
    err = e;
  }
  check(err !== undefined && /not.?found/i.test(`${err.code} ${err.message}`),
    "unknown hub: not-found error", err && `${err.code}: ${err.message}`);
  await nf.close();
}

// ---- the SDK recovers from injected faults without losing or repeating events ----
{
  const faultOptions = { retryOptions: { maxRetries: 5, retryDelayInMs: 300, timeoutInMs: 10000 } };
  const prod = new EventHubProducerClient(connStr(KEY), "other", faultOptions);
  const cons = new EventHubConsumerClient("$Default", connStr(KEY), "other", faultOptions);
  const seqs = [];
  const bodies = [];
  const s = cons.subscribe(
    "0",
    {
      processEvents: async (events) => {
        for (const e of events) {
          seqs.push(e.sequenceNumber);
          bodies.push(e.body.k);
        }
      },
      processError: async () => {}, // retryable errors are reported here; recovery is checked below
    },
    { startPosition: earliestEventPosition, maxBatchSize: 10, maxWaitTimeInSeconds: 1 },
  );
  let k = 0;
  const sendThree = async () => {
    const events = [0, 1, 2].map(() => ({ body: { k: k++ } }));
    await prod.sendBatch(events, { partitionId: "0" });
  };
  await sendThree();
  await waitFor(() => seqs.length >= 3, 10000, "events before faults");
  let r = await control("detach * amqp:link:detach-forced");
  check(r.startsWith("ok links="), "control: detach", r);
  await sendThree();
  await waitFor(() => seqs.length >= 6, 15000, "events after detach-forced");
  r = await control("drop-connections");
  check(r.startsWith("ok connections="), "control: drop-connections", r);
  await sendThree();
  await waitFor(() => seqs.length >= 9, 20000, "events after drop-connections");
  r = await control("refuse-attach 1 com.microsoft:server-busy");
  check(r === "ok refuse-attach=1", "control: refuse-attach", r);
  await control("detach 0 com.microsoft:server-busy");
  await sendThree();
  await waitFor(() => seqs.length >= 12, 20000, "events after server-busy");
  await sleep(500);
  check(JSON.stringify(seqs) === JSON.stringify([...Array(12).keys()]),
    "after detach-forced, dropped connections and server-busy the SDK got every event once, in order",
    seqs);
  check(JSON.stringify(bodies) === JSON.stringify([...Array(12).keys()]), "bodies in order", bodies);
  await s.close();
  await cons.close();
  await prod.close();
}

await producer.close();
await consumer.close();
stopEmulator();
console.log(`${checks - failures}/${checks} checks passed (${tlsDir ? "TLS" : "plain"})`);
process.exit(failures === 0 ? 0 : 1);
