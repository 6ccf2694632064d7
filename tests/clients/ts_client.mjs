// Scripted MCP client on the official TypeScript SDK (@modelcontextprotocol/sdk 1.x), used by
// tests/mcp_clients.rs against the gateway's aggregated endpoint.
//
// Usage: node tests/clients/ts_client.mjs <gateway base URL> <streamable-http|sse>
//
// Scenario: connect; list tools; call a tool on the stateless test server (`sl`), on the
// session-generation test server (`ss`, prefix `s_`), on the Python SDK server (`py`) and on
// server-everything (`ev`); call server-everything's long-running tool and the test server's
// `progress` tool with a progress callback; cancel a long `sleep` with an AbortController and
// poll `cancelled_count` until the upstream saw the cancellation; call `add_tool` on `sl` and
// on `ss` and wait (bounded) for notifications/tools/list_changed, then list again.
//
// Prints ONE JSON object with what it observed on stdout; exits 1 on an unexpected failure
// (the JSON then carries `fatal`). The SDK is loaded from tests/peers/node_modules (override
// with MCP_PEERS_DIR).

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCP_PEERS_DIR ?? path.join(here, "..", "peers");
const sdk = (p) =>
  import(pathToFileURL(path.join(peers, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);

const [, , base, transportKind] = process.argv;
if (!base || !["streamable-http", "sse"].includes(transportKind)) {
  console.error("usage: node ts_client.mjs <gateway base URL> <streamable-http|sse>");
  process.exit(2);
}

// `errors`: failures of individual steps (the scenario goes on); `fatal`: what stopped it.
const out = { client: "typescript", transport: transportKind, errors: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? null;

/** Waits until `pred()` is truthy or `ms` elapse; returns the last value of `pred()`. */
async function until(pred, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= deadline) return v;
    await sleep(50);
  }
}

async function main() {
  const { Client } = await sdk("client/index.js");
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  const { SSEClientTransport } = await sdk("client/sse.js");
  const { ToolListChangedNotificationSchema } = await sdk("types.js");

  const transport =
    transportKind === "sse"
      ? new SSEClientTransport(new URL(`${base}/sse`))
      : new StreamableHTTPClientTransport(new URL(`${base}/mcp`));
  const setVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (v) => {
    out.protocolVersion = v;
    setVersion?.(v);
  };

  const client = new Client({ name: "gateway-test-ts", version: "1.0.0" });
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    listChanged += 1;
  });

  await client.connect(transport);
  // Progress as it arrives on the wire, before the SDK's own dispatch: the SDK runs
  // notification handlers in a microtask but settles responses synchronously, so a progress
  // notification read in the same chunk as the result never reaches `onprogress`.
  let wire = [];
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg?.method === "notifications/progress") wire.push(msg.params?.progress);
    onmessage?.(msg, extra);
  };
  out.serverInfo = client.getServerVersion() ?? null;
  out.capabilities = client.getServerCapabilities() ?? null;
  if (transportKind === "streamable-http") out.sessionId = transport.sessionId ?? null;

  const listAll = async () => {
    const names = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    return names;
  };
  out.tools = await listAll();

  const call = async (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);
  out.calls = {};
  const record = async (key, name, args) => {
    try {
      const r = await call(name, args);
      out.calls[key] = { text: text(r), isError: r.isError ?? false };
    } catch (e) {
      out.calls[key] = { error: String(e?.message ?? e), code: e?.code ?? null };
      out.errors.push(`${key}: ${e?.message ?? e}`);
    }
  };
  await record("stateless_echo", "sl__echo", { text: "hello stateless" });
  await record("session_add", "ss__s_add", { a: 2, b: 3 });
  await record("py_greet", "py__greet", { name: "gateway" });
  await record("everything_sum", "ev__get-sum", { a: 4, b: 5 });
  await record("tool_error", "sl__fail", {});

  // Progress: server-everything's long-running operation and the test server's `progress`.
  out.progress = {};
  const withProgress = async (key, name, args) => {
    const values = [];
    wire = [];
    try {
      const r = await call(name, args, {
        onprogress: (p) => values.push({ progress: p.progress, total: p.total ?? null }),
        timeout: 20000,
      });
      out.progress[key] = { values, wire, text: text(r) };
    } catch (e) {
      out.progress[key] = { values, wire, error: String(e?.message ?? e) };
      out.errors.push(`${key}: ${e?.message ?? e}`);
    }
  };
  await withProgress("everything", "ev__trigger-long-running-operation", { duration: 1, steps: 4 });
  await withProgress("stateless", "sl__progress", { steps: 5 });

  // Cancellation: abort a long sleep, then ask the upstream how many cancellations it saw.
  const count = async () => Number(text(await call("sl__cancelled_count", {})));
  const before = await count();
  const controller = new AbortController();
  const started = Date.now();
  const pending = call("sl__sleep", { ms: 20000 }, { signal: controller.signal, timeout: 30000 });
  await sleep(300);
  controller.abort("test cancels");
  const cancel = { before };
  try {
    const r = await pending;
    cancel.outcome = "completed";
    cancel.text = text(r);
  } catch (e) {
    cancel.outcome = "rejected";
    cancel.error = String(e?.message ?? e);
  }
  cancel.settledMs = Date.now() - started;
  cancel.after = await until(async () => {
    const n = await count();
    return n > before ? n : 0;
  }, 5000);
  cancel.reachedUpstream = cancel.after > before;
  out.cancel = cancel;
  // The gateway still serves this client after a cancellation.
  await record("after_cancel", "sl__echo", { text: "still here" });

  // list_changed, once through each upstream generation.
  out.listChanged = {};
  for (const [server, tool] of [
    ["sl", "sl__add_tool"],
    ["ss", "ss__s_add_tool"],
  ]) {
    const name = `dyn_ts_${transportKind.replace("-", "_")}_${server}`;
    const seenBefore = listChanged;
    const r = await call(tool, { name });
    const seen = await until(() => listChanged > seenBefore, 5000);
    const expected = `${server}__${name}`;
    const listed = await until(async () => (await listAll()).includes(expected), 5000);
    let dynCall = null;
    if (listed) dynCall = text(await call(expected, {}));
    out.listChanged[server] = {
      addResult: text(r),
      notificationSeen: Boolean(seen),
      notifications: listChanged - seenBefore,
      newTool: expected,
      newToolListed: Boolean(listed),
      newToolCall: dynCall,
    };
  }

  await client.close();
}

const watchdog = setTimeout(() => {
  out.fatal = "scenario did not finish within 60 s";
  console.log(JSON.stringify(out));
  process.exit(1);
}, 60000);

main().then(
  () => {
    clearTimeout(watchdog);
    console.log(JSON.stringify(out));
    process.exit(0);
  },
  (e) => {
    clearTimeout(watchdog);
    out.fatal = String(e?.stack ?? e);
    console.log(JSON.stringify(out));
    process.exit(1);
  },
);
