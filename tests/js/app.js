// A function written with the JS SDK's DaprServer, configured only through the environment an injector sets
// (DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT, DAPR_API_TOKEN, APP_PORT). Every event its handlers receive is printed on
// stdout as one JSON line; tests/SharedRuntime.SdkTests/JsSdkTests.cs reads them.
//   {"handler":"orders","data":{...}}       a normal topic subscription
//   {"handler":"bulk","data":{...}}         a bulk subscription, one line per entry
//   {"handler":"batch","entries":N}         one line per bulk request the runtime sent
//   {"handler":"raw","data":{...}}          a subscription with rawPayload=true
//   {"ready":true}                          once the server listens and the runtime answered
const express = require("express");
const { DaprServer, LogLevel } = require("@dapr/dapr");

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

async function main() {
  const http = express();
  // Counts the entries of each bulk request once the SDK has parsed and answered it.
  http.use((req, res, next) => {
    res.on("finish", () => {
      if (req.body && Array.isArray(req.body.entries)) {
        print({ handler: "batch", entries: req.body.entries.length });
      }
    });
    next();
  });

  const server = new DaprServer({ serverHttp: http, logger: { level: LogLevel.Error } });
  await server.pubsub.subscribe("pubsub", "orders", async (data) => print({ handler: "orders", data }));
  await server.pubsub.subscribeBulk("pubsub", "bulk-orders", async (data) => print({ handler: "bulk", data }), {
    maxMessagesCount: 10,
    maxAwaitDurationMs: 1000,
  });
  await server.pubsub.subscribe("pubsub", "raw-orders", async (data) => print({ handler: "raw", data }), "", {
    rawPayload: "true",
  });
  await server.start();
  print({ ready: true });

  const stop = async () => {
    await server.stop();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
