// Checks tests/peers/py_everything.py (or any endpoint serving its tools under their own names,
// such as mcp-gateway's /mcp in front of it) with the official TypeScript SDK 2.x client
// (@modelcontextprotocol/client, which speaks the stateless 2026-07-28 revision: `server/discover`,
// the per-request `_meta` envelope, Multi Round-Trip Requests, `subscriptions/listen`) over
// Streamable HTTP. It observes the same things tests/peers/py_everything_check.py does in
// `--mode auto`: the client must see through the gateway exactly what it sees directly.
//
// Usage: node tests/clients/ts_everything_check_2026.mjs <URL of the MCP endpoint>
// Prints `PASS <url>: <checks>` and exits 0, or `FAIL <url>: ...` and exits 1.
// The SDK is loaded from tests/peers/node_modules (override with MCP_PEERS_DIR).

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCP_PEERS_DIR ?? path.join(here, "..", "peers");
const clientPkg = () =>
  import(pathToFileURL(path.join(peers, "node_modules/@modelcontextprotocol/client/dist/index.mjs")).href);

const [, , url] = process.argv;
if (!url) {
  console.error("usage: node ts_everything_check_2026.mjs <MCP endpoint URL>");
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
  const { Client, StreamableHTTPClientTransport, LOG_LEVEL_META_KEY } = await clientPkg();

  // What the server asked (sampling / elicitation) and sent (logs, resource updates).
  const asked = [];
  const logs = [];
  const updates = [];

  // The same answers as py_everything_check.py's Recorder.
  const sampling = async (params) => {
    const blocks = (m) => (Array.isArray(m.content) ? m.content : [m.content]);
    const prompt = params.messages.map((m) => blocks(m).map((b) => b.text ?? "").join("")).join("");
    asked.push(["sampling", prompt]);
    return { role: "assistant", content: { type: "text", text: `echo(${prompt})` }, model: "check-model" };
  };
  const elicitation = async (params) => {
    const schema = params.requestedSchema;
    asked.push(["elicitation", schema]);
    const content = {};
    for (const [name, prop] of Object.entries(schema.properties)) {
      if ("default" in prop) content[name] = prop.default;
      else if ("enum" in prop) content[name] = prop.enum[0];
      else if ("oneOf" in prop) content[name] = prop.oneOf[0].const;
    }
    return { action: "accept", content };
  };

  const client = new Client(
    { name: "ts-everything-check-2026", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: { form: {} } }, versionNegotiation: { mode: "auto" } },
  );
  // On 2026-07-28 these answer the `input_required` rounds (MRTR auto-fulfilment).
  client.setRequestHandler("sampling/createMessage", (request) => sampling(request.params));
  client.setRequestHandler("elicitation/create", (request) => elicitation(request.params));
  client.setNotificationHandler("notifications/message", (n) => {
    logs.push([n.params.level, n.params.data]);
  });
  client.setNotificationHandler("notifications/resources/updated", (n) => {
    updates.push(n.params.uri);
  });

  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);

  // Progress as it arrives on the wire, before the SDK's dispatch (see ts_everything_check.mjs).
  const wire = [];
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg?.method === "notifications/progress") wire.push(msg.params);
    onmessage?.(msg, extra);
  };

  const version = client.getNegotiatedProtocolVersion();
  same([client.getProtocolEra(), version], ["modern", MODERN], "negotiated era and version");
  check(client.getDiscoverResult(), "server/discover result recorded", client.getDiscoverResult());
  const caps = client.getServerCapabilities();
  check(caps?.tools && caps?.resources, "server declares tools and resources", caps);
  check(caps.resources.subscribe, "server declares resources.subscribe", caps);
  check(caps.logging, "server declares logging", caps);
  passed.push(`negotiated ${version} via server/discover`);

  // The 2026-07-28 per-request log opt-in (SEP-2577), on every call like the Python client's
  // `log_level="debug"`.
  const call = (name, args, opts, extra) =>
    client.callTool(
      { name, arguments: args, _meta: { [LOG_LEVEL_META_KEY]: "debug" }, ...extra },
      { timeout: 30000, ...opts },
    );

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

  const MULTI = { topic: "weather", sampled: "echo(Round 2: weather)" };
  asked.length = 0;
  same(JSON.parse(text(await call("multi_round", {}))), MULTI, "multi_round result");
  same(
    asked.map(([k]) => k),
    ["elicitation", "sampling"],
    "multi_round: rounds asked",
  );
  same(asked[1][1], "Round 2: weather", "multi_round: round 2 prompt");
  passed.push("multi_round");

  // multi_round's MRTR loop by hand: two input rounds, each carrying requestState.
  const kinds = [];
  let inputResponses;
  let requestState;
  let r;
  // client.request, not callTool: callTool (2.0.0) validates an `input_required` answer against
  // the tool's outputSchema and rejects it ("did not return structured content").
  for (let round = 0; round < 3; round++) {
    const extra = inputResponses ? { inputResponses, requestState } : {};
    const params = { name: "multi_round", arguments: {}, _meta: { [LOG_LEVEL_META_KEY]: "debug" }, ...extra };
    r = await client.request({ method: "tools/call", params }, { allowInputRequired: true, timeout: 30000 });
    if (r.resultType !== "input_required") break;
    check(r.requestState, "each round carries requestState", r);
    requestState = r.requestState;
    const entries = Object.entries(r.inputRequests ?? {});
    check(entries.length === 1, "one input request per round", r);
    inputResponses = {};
    for (const [key, req] of entries) {
      kinds.push(req.method);
      if (req.method === "elicitation/create") inputResponses[key] = await elicitation(req.params);
      else if (req.method === "sampling/createMessage") inputResponses[key] = await sampling(req.params);
      else throw new Error(`unexpected input request ${show(req)}`);
    }
  }
  same(JSON.parse(text(r)), MULTI, "multi_round (by hand) result");
  same(kinds, ["elicitation/create", "sampling/createMessage"], "multi_round (by hand) rounds");
  passed.push("multi_round-mrtr(2 rounds, requestState)");

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
    check(isDeepStrictEqual(values, want4.slice(0, values.length)), "progress: onprogress values", values);
    progressNote = `(onprogress ${values.length}/4, SDK race)`;
  }
  wire.length = 0;
  same(text(await call("progress", {}, { onprogress })), "done", "progress (default steps) result");
  await until(() => wire.length >= 3, 2000);
  same(wire.length, 3, "progress (default steps): notifications received");
  passed.push(`progress${progressNote}`);

  const counter = async () =>
    Number((await client.readResource({ uri: COUNTER }, { cacheMode: "bypass" })).contents[0].text.split("=")[1]);
  const before = await counter();
  const sub = await client.listen({ resourceSubscriptions: [COUNTER] }, { timeout: 10000 });
  same(sub.honoredFilter.resourceSubscriptions, [COUNTER], "subscriptions/listen honored filter");
  same(text(await call("touch", { uri: COUNTER })), "touched", "touch result");
  const got = await until(() => updates.includes(COUNTER), 5000);
  check(got, "touch while listening: notifications/resources/updated", updates);
  updates.length = 0;
  await sub.close();
  same(await sub.closed, "local", "subscription closed");
  same(text(await call("touch", { uri: COUNTER })), "touched", "touch result");
  await sleep(300);
  same(updates, [], "touch after closing the listen stream: no notifications/resources/updated");
  passed.push("listen+touch");
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
