// Session-generation client on the official TypeScript SDK, driven through several gateway
// replicas at once: every HTTP request the SDK makes goes to the next replica in turn (a
// round-robin load balancer without stickiness), so the session is opened on one replica and
// used on the others. Used by tests/cluster.rs.
//
// Usage: node tests/clients/ts_cluster.mjs <base URL>,<base URL>,... <api key>
//
// Scenario: connect (initialize) with the `sampling` capability; list tools; call tools;
// a call with progress; a server-everything sampling request answered by this client (the
// answer is POSTed to a different replica than the one holding the call); abort a long call
// (the cancellation reaches another replica); terminate the session. Prints ONE JSON object:
// what it saw, including which replica answered each request (X-MCP-Gateway-Replica).

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCP_PEERS_DIR ?? path.join(here, "..", "peers");
const sdk = (p) =>
  import(pathToFileURL(path.join(peers, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);

const [, , list, apiKey] = process.argv;
if (!list || !apiKey) {
  console.error("usage: node ts_cluster.mjs <base>,<base>,... <api key>");
  process.exit(2);
}
const bases = list.split(",").map((b) => new URL(b));
const out = { client: "typescript-cluster", errors: [], hits: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? null;

let turn = 0;
/** fetch that sends each request to the next replica and notes who answered. */
async function roundRobin(input, init) {
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  const target = bases[turn++ % bases.length];
  url.protocol = target.protocol;
  url.host = target.host;
  let method = null;
  try {
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    method = body?.method ?? (body && "result" in body ? "(answer)" : null);
  } catch {
    // not JSON: leave the method unknown
  }
  const res = await fetch(url, init);
  out.hits.push({
    http: init?.method ?? "GET",
    method,
    status: res.status,
    replica: res.headers.get("x-mcp-gateway-replica"),
  });
  return res;
}

async function main() {
  const { Client } = await sdk("client/index.js");
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  const { CreateMessageRequestSchema } = await sdk("types.js");

  const transport = new StreamableHTTPClientTransport(new URL("/mcp", bases[0]), {
    fetch: roundRobin,
    requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
  });
  const client = new Client(
    { name: "gateway-cluster-test", version: "1.0.0" },
    { capabilities: { sampling: {} } },
  );
  let sampled = 0;
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    sampled += 1;
    return {
      model: "test-model",
      role: "assistant",
      content: { type: "text", text: "sampled by the client" },
    };
  });
  let wire = [];
  await client.connect(transport);
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg?.method === "notifications/progress") wire.push(msg.params?.progress);
    onmessage?.(msg, extra);
  };
  out.sessionId = transport.sessionId ?? null;
  out.protocolVersion = transport.protocolVersion ?? null;

  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  out.tools = names;

  const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);
  out.calls = {};
  for (let i = 0; i < 6; i++) {
    const key = `echo${i}`;
    try {
      out.calls[key] = text(await call("t__echo", { text: `hello ${i}` }));
    } catch (e) {
      out.errors.push(`${key}: ${e?.message ?? e}`);
    }
  }
  try {
    out.calls.sum = text(await call("ev__get-sum", { a: 20, b: 22 }));
  } catch (e) {
    out.errors.push(`sum: ${e?.message ?? e}`);
  }

  const values = [];
  wire = [];
  try {
    const r = await call("t__progress", { steps: 5 }, {
      onprogress: (p) => values.push(p.progress),
      timeout: 20000,
    });
    out.progress = { values, wire, text: text(r) };
  } catch (e) {
    out.progress = { values, wire, error: String(e?.message ?? e) };
    out.errors.push(`progress: ${e?.message ?? e}`);
  }

  try {
    const r = await call(
      "ev__trigger-sampling-request",
      { prompt: "Say hi", maxTokens: 20 },
      { timeout: 20000 },
    );
    out.sampling = { text: text(r), sampled };
  } catch (e) {
    out.sampling = { error: String(e?.message ?? e), sampled };
    out.errors.push(`sampling: ${e?.message ?? e}`);
  }

  // Cancel a long call; the cancellation is POSTed to another replica than the call's.
  const controller = new AbortController();
  const started = Date.now();
  const pending = call("t__sleep", { ms: 15000 }, { signal: controller.signal, timeout: 30000 });
  await sleep(400);
  controller.abort("test cancels");
  try {
    await pending;
    out.cancel = { completed: true };
  } catch (e) {
    out.cancel = { aborted: true, afterMs: Date.now() - started };
  }
  // Give the cancellation time to travel before the session ends.
  await sleep(300);

  await transport.terminateSession();
  await client.close();
}

main()
  .catch((e) => {
    out.fatal = String(e?.stack ?? e);
  })
  .finally(() => {
    console.log(JSON.stringify(out));
    process.exit(out.fatal ? 1 : 0);
  });
