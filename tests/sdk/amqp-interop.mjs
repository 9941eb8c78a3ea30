// Interop for amqp/ (tests/amqp/test_amqp_interop.c): Microsoft's @azure/event-hubs publishes
// events to a running scanwatch-emulator, reads them back with its own consumer, and prints
// what it sent and saw as one JSON line per event. The C test receives the same events with
// scanwatch's client and compares body bytes, partition key, sequence number, offset and
// enqueued time.
//   node amqp-interop.mjs --port P
let sdk;
try {
  sdk = await import("@azure/event-hubs");
} catch (e) {
  console.error(`FAIL: cannot load @azure/event-hubs (${e.code ?? e.message}); run npm ci in tests/sdk`);
  process.exit(1);
}
const { EventHubProducerClient, EventHubConsumerClient, earliestEventPosition } = sdk;
const args = process.argv.slice(2);
const port = args[args.indexOf("--port") + 1];
const cs =
  `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
  `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;
const HUB = "eh1";
const opts = { retryOptions: { maxRetries: 2, retryDelayInMs: 200, timeoutInMs: 10000 } };

const binary = Buffer.alloc(256);
for (let i = 0; i < 256; i++) binary[i] = i;
const producer = new EventHubProducerClient(cs, HUB, opts);
let sent = 0;
{
  const b = await producer.createBatch({ partitionKey: "image-key-1" });
  for (const body of [binary, Buffer.from('{"id":"a","n":1}'), { x: "\u00e9", y: [1, 2] }]) {
    if (!b.tryAdd({ body })) throw new Error("tryAdd failed");
    sent++;
  }
  await producer.sendBatch(b);
}
{
  const b = await producer.createBatch({ partitionId: "2" });
  for (const body of [Buffer.from("plain-2"), "str-body"]) {
    if (!b.tryAdd({ body })) throw new Error("tryAdd failed");
    sent++;
  }
  await producer.sendBatch(b);
}
{
  // an AMQP-value body (string) with its own message annotation
  const b = await producer.createBatch({ partitionId: "3" });
  const msg = { body: "amqp-value text", bodyType: "value", messageAnnotations: { "x-custom": "ann" } };
  if (!b.tryAdd(msg)) throw new Error("tryAdd failed");
  sent++;
  await producer.sendBatch(b);
}
await producer.close();

const consumer = new EventHubConsumerClient("$Default", cs, HUB, opts);
const seen = [];
const sub = consumer.subscribe(
  {
    processEvents: async (events, ctx) => {
      for (const ev of events) {
        const body = Buffer.isBuffer(ev.body) ? ev.body : Buffer.from(String(ev.body), "utf8");
        seen.push({
          partition: ctx.partitionId,
          seq: ev.sequenceNumber,
          offset: String(ev.offset),
          enq: ev.enqueuedTimeUtc.getTime(),
          pkey: ev.partitionKey ?? null,
          body: body.toString("hex"),
        });
      }
    },
    processError: async (err) => console.error(`subscribe error: ${err.message}`),
  },
  { startPosition: earliestEventPosition, skipParsingBodyAsJson: true, maxBatchSize: 10,
    maxWaitTimeInSeconds: 1 },
);
const end = Date.now() + 20000;
while (seen.length < sent && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
await sub.close();
await consumer.close();
for (const s of seen) console.log(JSON.stringify(s));
if (seen.length !== sent) {
  console.error(`FAIL: JS consumer saw ${seen.length} of ${sent} events`);
  process.exit(1);
}
