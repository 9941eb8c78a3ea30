// Interop for the sender of amqp/ (tests/amqp/test_amqp_sender_interop.c): Microsoft's
// @azure/event-hubs consumer reads one partition that scanwatch's sw_amqp_send wrote and prints
// one JSON line per event (sequence number, body as hex, partition key) so that the C test can
// compare the bodies byte for byte.
//   node sender-interop.mjs --port P --hub H --partition N --count K
let sdk;
try {
  sdk = await import("@azure/event-hubs");
} catch (e) {
  console.error(`FAIL: cannot load @azure/event-hubs (${e.code ?? e.message}); run npm ci in tests/sdk`);
  process.exit(1);
}
const { EventHubConsumerClient, earliestEventPosition } = sdk;
const args = process.argv.slice(2);
const arg = (name) => args[args.indexOf(name) + 1];
const port = arg("--port");
const hub = arg("--hub");
const partition = arg("--partition");
const count = Number(arg("--count"));
const cs =
  `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;
const opts = { retryOptions: { maxRetries: 2, retryDelayInMs: 200, timeoutInMs: 10000 } };
const consumer = new EventHubConsumerClient("$Default", cs, hub, opts);
const seen = [];
const sub = consumer.subscribe(
  partition,
  {
    processEvents: async (events) => {
      for (const ev of events) {
        const body = Buffer.isBuffer(ev.body) ? ev.body : Buffer.from(String(ev.body), "utf8");
        seen.push({ seq: ev.sequenceNumber, pkey: ev.partitionKey ?? null, body: body.toString("hex") });
      }
    },
    processError: async (err) => console.error(`subscribe error: ${err.message}`),
  },
  { startPosition: earliestEventPosition, skipParsingBodyAsJson: true, maxBatchSize: 10,
    maxWaitTimeInSeconds: 1 },
);
const end = Date.now() + 20000;
while (seen.length < count && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300)); // extra events would show here
await sub.close();
await consumer.close();
for (const s of seen) console.log(JSON.stringify(s));
if (seen.length !== count) {
  console.error(`FAIL: JS consumer saw ${seen.length} of ${count} events`);
  process.exit(1);
}
