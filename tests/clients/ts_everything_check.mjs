// Checks tests/peers/py_everything.py (or any endpoint serving its tools under their own names,
// such as mcp-gateway's /mcp in front of it) with the official TypeScript SDK 1.x client
// (@modelcontextprotocol/sdk, the 2025 session generation) over Streamable HTTP. It observes
// the same things tests/peers/py_everything_check.py does in `--mode legacy`: the client must
// see through the gateway exactly what it sees directly.
//
// Usage: node tests/clients/ts_everything_check.mjs <URL of the MCP endpoint>
// Prints `PASS <url>: <checks>` and exits 0, or `FAIL <url>: ...` and exits 1.
// The SDK is loaded from tests/peers/node_modules (override with MCP_PEERS_DIR).

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCP_PEERS_DIR ?? path.join(here, "..", "peers");
const sdk = (p) =>
  import(pathToFileURL(path.join(peers, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);

const [, , url] = process.argv;
if (!url) {
  console.error("usage: node ts_everything_check.mjs <MCP endpoint URL>");
  process.exit(2);
}

const COUNTER = "watched://counter";
const TOOLS = ["client_caps", "echo", "elicit", "log_during_call", "multi_round", "progress", "sample", "touch"];
const MODERN = "2026-07-28";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (v) => JSON.stringify(v);

function check(cond, what, got) {
  if (!cond) throw new Error(`${what}: got ${show(got)}`);
}
function same(got, want, what) {
  if (!isDeepStrictEqual(got, want)) throw new Error(`${what}: got ${show(got)}, want ${show(want)}`);
}

function text(result) {
  check(!result.isError, "tool error", result.content);
  return (result.content ?? []).map((c) => c.text ?? "").join("");
}

/** Waits until `pred()` is truthy or `ms` elapse; returns the last value of `pred()`. */
async function until(pred, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= deadline) return v;
    await sleep(20);
  }
}

async function main(passed) {
  const { Client } = await sdk("client/index.js");
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  const types = await sdk("types.js");

  // What the server asked (sampling / elicitation) and sent (logs, other notifications).
  const asked = [];
  const logs = [];
  const updates = [];

  const client = new Client(
    { name: "ts-everything-check", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: { form: {} } } },
  );

  // The same answers as py_everything_check.py's Recorder.
  client.setRequestHandler(types.CreateMessageRequestSchema, async (request) => {
    const blocks = (m) => (Array.isArray(m.content) ? m.content : [m.content]);
    const prompt = request.params.messages.map((m) => blocks(m).map((b) => b.text ?? "").join("")).join("");
    asked.push(["sampling", prompt]);
    return { role: "assistant", content: { type: "text", text: `echo(${prompt})` }, model: "check-model" };
  });
  client.setRequestHandler(types.ElicitRequestSchema, async (request) => {
    const schema = request.params.requestedSchema;
    asked.push(["elicitation", schema]);
    const content = {};
    for (const [name, prop] of Object.entries(schema.properties)) {
      if ("default" in prop) content[name] = prop.default;
      else if ("enum" in prop) content[name] = prop.enum[0];
      else if ("oneOf" in prop) content[name] = prop.oneOf[0].const;
    }
    return { action: "accept", content };
  });
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => {
    logs.push([n.params.level, n.params.data]);
  });
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });

  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);

  // Progress as it arrives on the wire, before the SDK's dispatch: the SDK runs notification
  // handlers in a microtask but settles responses synchronously, so a progress notification
  // read in the same chunk as the result can miss `onprogress` (an SDK race, not the server's).
  const wire = [];
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg?.method === "notifications/progress") wire.push(msg.params);
    onmessage?.(msg, extra);
  };

  const version = transport.protocolVersion;
  check(version && version !== MODERN, "negotiated a 2025 revision", version);
  check(transport.sessionId, "got an Mcp-Session-Id", transport.sessionId);
  const caps = client.getServerCapabilities();
  check(caps?.tools && caps?.resources, "server declares tools and resources", caps);
  check(caps.resources.subscribe, "server declares resources.subscribe", caps);
  check(caps.logging, "server declares logging", caps);
  passed.push(`negotiated ${version}`);

  await client.setLoggingLevel("debug");
  passed.push("setLevel(debug)");

  const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, { timeout: 30000, ...opts });

  same((await client.listTools()).tools.map((t) => t.name).sort(), TOOLS, "tools/list names");
  same(
    (await client.listResources()).resources.map((r) => r.uri).sort(),
    ["static://hello", COUNTER],
    "resources/list uris",
  );
  same((await client.readResource({ uri: "static://hello" })).contents[0].text, "hello", "static://hello");
  passed.push("lists+static");

  same(text(await call("echo", { text: "hi there" })), "hi there", "echo");
  passed.push("echo");

  asked.length = 0;
  same(text(await call("sample", { prompt: "say hi" })), "sampled: echo(say hi)", "sample result");
  same(asked, [["sampling", "say hi"]], "sample: what the server asked");
  passed.push("sample");

  asked.length = 0;
  same(
    JSON.parse(text(await call("elicit", {}))),
    { action: "accept", content: { name: "anonymous", color: "red", size: "m", count: 2.5 } },
    "elicit result",
  );
  check(asked.length === 1 && asked[0][0] === "elicitation", "elicit: one elicitation asked", asked);
  const props = asked[0][1].properties;
  same(props.color.enum, ["red", "green", "blue"], "elicit: color enum");
  same(
    props.size.oneOf.map((o) => o.title),
    ["Small", "Medium", "Large"],
    "elicit: size titled enum",
  );
  same([props.name.default, props.count.default], ["anonymous", 2.5], "elicit: defaults");
  passed.push("elicit");

  asked.length = 0;
  same(
    JSON.parse(text(await call("multi_round", {}))),
    { topic: "weather", sampled: "echo(Round 2: weather)" },
    "multi_round result",
  );
  same(
    asked.map(([k]) => k),
    ["elicitation", "sampling"],
    "multi_round: rounds asked",
  );
  same(asked[1][1], "Round 2: weather", "multi_round: round 2 prompt");
  passed.push("multi_round");

  logs.length = 0;
  same(text(await call("log_during_call", {})), "logged", "log_during_call result");
  await until(() => logs.length >= 3, 2000);
  same(
    logs,
    [
      ["debug", "debug message"],
      ["info", "info message"],
      ["warning", "warning message"],
    ],
    "log_during_call: notifications/message",
  );
  passed.push("log_during_call");

  // Progress: steps=4, then the default (3).
  const values = [];
  const onprogress = (p) => values.push([p.progress, p.total ?? null]);
  wire.length = 0;
  same(text(await call("progress", { steps: 4 }, { onprogress })), "done", "progress result");
  await until(() => values.length >= 4, 2000);
  const want4 = [
    [1, 4],
    [2, 4],
    [3, 4],
    [4, 4],
  ];
  same(
    wire.map((p) => [p.progress, p.total ?? null]),
    want4,
    "progress: notifications/progress received",
  );
  check(new Set(wire.map((p) => p.progressToken)).size === 1, "progress: one progressToken", wire);
  let progressNote = "";
  if (!isDeepStrictEqual(values, want4)) {
    // Only the SDK race may cost trailing notifications; anything else is a failure.
    check(isDeepStrictEqual(values, want4.slice(0, values.length)), "progress: onprogress values", values);
    progressNote = `(onprogress ${values.length}/4, SDK race)`;
  }
  wire.length = 0;
  same(text(await call("progress", {}, { onprogress })), "done", "progress (default steps) result");
  await until(() => wire.length >= 3, 2000);
  same(wire.length, 3, "progress (default steps): notifications received");
  passed.push(`progress${progressNote}`);

  const counter = async () => Number((await client.readResource({ uri: COUNTER })).contents[0].text.split("=")[1]);
  const before = await counter();
  await client.subscribeResource({ uri: COUNTER });
  // The notification rides the GET stream, which the client opens right after the handshake;
  // give it a moment to be established (the server does not replay).
  await sleep(300);
  same(text(await call("touch", { uri: COUNTER })), "touched", "touch result");
  const got = await until(() => updates.includes(COUNTER), 5000);
  check(got, "touch after subscribe: notifications/resources/updated", updates);
  updates.length = 0;
  await client.unsubscribeResource({ uri: COUNTER });
  same(text(await call("touch", { uri: COUNTER })), "touched", "touch result");
  await sleep(300);
  same(updates, [], "touch after unsubscribe: no notifications/resources/updated");
  passed.push("subscribe+touch");
  same(await counter(), before + 2, "watched://counter after two touches");
  passed.push("counter");

  const seen = JSON.parse(text(await call("client_caps", {})));
  check(seen && "sampling" in seen && "form" in (seen.elicitation ?? {}), "client_caps", seen);
  passed.push(`client_caps=${show(seen)}`);

  await client.close();
}

const passed = [];
const watchdog = setTimeout(() => {
  console.log(`FAIL ${url}: did not finish within 90 s; passed so far: ${passed.join(", ")}`);
  process.exit(1);
}, 90000);

main(passed).then(
  () => {
    clearTimeout(watchdog);
    console.log(`PASS ${url}: ${passed.join(", ")}`);
    process.exit(0);
  },
  (e) => {
    clearTimeout(watchdog);
    console.log(`FAIL ${url}: ${e?.stack ?? e}\npassed before: ${passed.join(", ")}`);
    process.exit(1);
  },
);
