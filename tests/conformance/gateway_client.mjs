#!/usr/bin/env node
// Client-under-test for the MCP conformance suite's *client* mode, played by mcp-gateway.
//
//   conformance client --command "node tests/conformance/gateway_client.mjs" --scenario <name>
//
// The suite starts a mock MCP server for the scenario and runs this command with the mock's
// URL appended (argv[2]), MCP_CONFORMANCE_SCENARIO, MCP_CONFORMANCE_PROTOCOL_VERSION and, for
// some scenarios, MCP_CONFORMANCE_CONTEXT (JSON). This script
//   1. writes a gateway config whose only upstream is the mock (streamable-http, bare names),
//   2. starts target/debug/mcp-gateway and waits until it is ready and the upstream is up,
//   3. performs the scenario's client action THROUGH the gateway's /mcp endpoint, as a
//      downstream client of either generation,
//   4. stops the gateway and exits 0 (action completed) or 1.
// The mock judges what the gateway sent upstream; this script only drives it.
//
// Environment (all optional):
//   GATEWAY_UPSTREAM_PROTOCOL  auto | session | stateless: the server's `protocol` setting
//                              (default: stateless for 2026-07-28, else session)
//   GATEWAY_DOWNSTREAM         session | stateless: generation of the downstream client
//                              (default: same as the upstream generation; auto -> session)
//   MCP_GATEWAY_BIN            gateway binary (default: <repo>/target/debug/mcp-gateway)
//   GATEWAY_LOG_LEVEL          gateway logLevel (default: debug)
//   GATEWAY_CLIENT_TIMEOUT_MS  self-imposed deadline (default: 25000, under the suite's 30 s)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const require = createRequire(path.join(REPO, 'tests', 'peers', 'package.json'));
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { ElicitRequestSchema, CreateMessageRequestSchema, CallToolResultSchema } = require(
  '@modelcontextprotocol/sdk/types.js',
);

const STATELESS_VERSION = '2026-07-28';
const mockUrl = process.argv[2];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const specVersion = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? '2025-11-25';
const context = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
const upstreamProtocol =
  process.env.GATEWAY_UPSTREAM_PROTOCOL || (specVersion === STATELESS_VERSION ? 'stateless' : 'session');
const downstream =
  process.env.GATEWAY_DOWNSTREAM || (upstreamProtocol === 'stateless' ? 'stateless' : 'session');
const gatewayBin = process.env.MCP_GATEWAY_BIN || path.join(REPO, 'target', 'debug', 'mcp-gateway');
const logLevel = process.env.GATEWAY_LOG_LEVEL || 'debug';
const deadlineMs = Number(process.env.GATEWAY_CLIENT_TIMEOUT_MS || 25000);

const log = (...a) => console.log(`[gateway-client ${new Date().toISOString().slice(11, 23)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (!mockUrl) {
  console.error('usage: gateway_client.mjs <mock-server-url>  (run by the conformance suite)');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let gw = null;
let gwLogPath = null;
let tmpDir = null;

function stopGateway() {
  if (gw && gw.exitCode === null && gw.signalCode === null) {
    try {
      gw.kill('SIGTERM');
    } catch {}
  }
}

async function startGateway() {
  const port = await freePort();
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-gw-conformance-'));
  const configPath = path.join(tmpDir, 'gateway.yml');
  const config = [
    `host: 127.0.0.1`,
    `port: ${port}`,
    `logLevel: ${logLevel}`,
    `auth: {strategy: none}`,
    `toolNaming: bare`,
    `servers:`,
    `  - id: mock`,
    `    transport: streamable-http`,
    `    url: ${JSON.stringify(mockUrl)}`,
    `    toolPrefix: ""`,
    `    protocol: ${upstreamProtocol}`,
    `    timeout: 15000`,
    ``,
  ].join('\n');
  fs.writeFileSync(configPath, config);
  log(`scenario=${scenario} spec=${specVersion} upstream protocol=${upstreamProtocol} downstream=${downstream}`);
  log(`config ${configPath}:\n${config}`);
  gwLogPath = path.join(tmpDir, 'gateway.log');
  const out = fs.openSync(gwLogPath, 'w');
  gw = spawn(gatewayBin, ['start', '-c', configPath], {
    stdio: ['ignore', out, out],
    env: { ...process.env, NO_COLOR: '1', RUST_LOG_STYLE: 'never' },
  });
  gw.on('exit', (code, sig) => log(`gateway exited code=${code} signal=${sig}`));
  const base = `http://127.0.0.1:${port}`;

  // /readyz, then the upstream's status in the admin API (auth none: everyone is admin).
  const t0 = Date.now();
  for (;;) {
    if (gw.exitCode !== null) throw new Error(`gateway exited early (code ${gw.exitCode})`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch {}
    if (Date.now() - t0 > 10000) throw new Error('gateway not ready after 10 s');
    await sleep(50);
  }
  // Wait for the upstream to be connected (healthy/degraded/unhealthy); a server that is
  // `down` may still come up on the gateway's own retry, so keep polling for a while.
  const CONNECTED = ['healthy', 'degraded', 'unhealthy'];
  let s = {};
  for (;;) {
    try {
      const r = await fetch(`${base}/api/v1/servers/mock`);
      if (r.ok) {
        const j = await r.json();
        s = j.server ?? j;
      }
    } catch {}
    if (CONNECTED.includes(s.status) || Date.now() - t0 > 6000) break;
    await sleep(50);
  }
  log(
    `gateway up on ${base} after ${Date.now() - t0} ms; upstream status=${s.status} ` +
      `protocolVersion=${s.protocolVersion} toolCount=${s.toolCount}` +
      (s.error ? ` error=${JSON.stringify(s.error)}` : ''),
  );
  if (!CONNECTED.includes(s.status))
    throw new Error(`the gateway never connected to the mock upstream (status ${s.status}): ${s.error ?? ''}`);
  return `${base}/mcp`;
}

// ---------------------------------------------------------------------------------------
// Downstream clients: the SDK client (2025 session generation) and a raw 2026-07-28
// stateless client (the SDK 1.x client does not speak it yet), with one interface.
// ---------------------------------------------------------------------------------------

// SEP-2243 value encoding for Mcp-Name / Mcp-Param-* headers.
function encodeHeaderValue(v) {
  const s = typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v);
  const safe = /^[\x20-\x7e]*$/.test(s) && s === s.trim();
  return safe ? s : `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

function paramHeaders(tool, args) {
  const out = {};
  const props = tool?.inputSchema?.properties ?? {};
  for (const [k, p] of Object.entries(props)) {
    const h = p && typeof p === 'object' ? p['x-mcp-header'] : undefined;
    if (typeof h !== 'string' || !h) continue;
    const v = args?.[k];
    if (v === undefined || v === null || typeof v === 'object') continue;
    out[`Mcp-Param-${h}`] = encodeHeaderValue(v);
  }
  return out;
}

async function readJsonRpc(resp, id) {
  const ct = resp.headers.get('content-type') ?? '';
  const text = await resp.text();
  if (ct.includes('text/event-stream')) {
    // Take the response carrying our id; log anything else (notifications, requests).
    let found = null;
    for (const block of text.split(/\r?\n\r?\n/)) {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data.trim()) continue;
      const msg = JSON.parse(data);
      if (msg.id === id && (msg.result !== undefined || msg.error !== undefined)) found = msg;
      else log(`  (stream message) ${data.slice(0, 300)}`);
    }
    if (!found) throw new Error(`HTTP ${resp.status}: no response for id ${id} in SSE body: ${text.slice(0, 500)}`);
    return { status: resp.status, msg: found };
  }
  if (!text) return { status: resp.status, msg: null };
  try {
    return { status: resp.status, msg: JSON.parse(text) };
  } catch {
    throw new Error(`HTTP ${resp.status}: non-JSON body: ${text.slice(0, 500)}`);
  }
}

class StatelessDownstream {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.tools = new Map();
    this.capabilities = { elicitation: { form: {} }, sampling: {}, roots: {} };
  }
  async connect() {}
  async close() {}
  // Raw request: returns the JSON-RPC message ({result} or {error}).
  async rpc(method, params = {}, { extraHeaders = {} } = {}) {
    const id = this.nextId++;
    const _meta = {
      'io.modelcontextprotocol/protocolVersion': STATELESS_VERSION,
      'io.modelcontextprotocol/clientInfo': { name: 'gateway-conformance-downstream', version: '1.0.0' },
      'io.modelcontextprotocol/clientCapabilities': this.capabilities,
      ...(params._meta ?? {}),
    };
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': STATELESS_VERSION,
      'Mcp-Method': method,
      ...extraHeaders,
    };
    if (method === 'tools/call' || method === 'prompts/get') headers['Mcp-Name'] = encodeHeaderValue(params.name);
    if (method === 'resources/read') headers['Mcp-Name'] = encodeHeaderValue(params.uri);
    const body = { jsonrpc: '2.0', id, method, params: { ...params, _meta } };
    const resp = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body) });
    const { status, msg } = await readJsonRpc(resp, id);
    log(`  -> ${method} HTTP ${status}: ${JSON.stringify(msg).slice(0, 400)}`);
    return msg ?? {};
  }
  async request(method, params) {
    const m = await this.rpc(method, params);
    if (m.error) throw new Error(`${method} failed: ${m.error.code} ${m.error.message}`);
    return m.result;
  }
  async discover() {
    return this.request('server/discover', {});
  }
  async listTools() {
    const r = await this.request('tools/list', {});
    for (const t of r.tools ?? []) this.tools.set(t.name, t);
    return r;
  }
  // Raw tools/call (MRTR-aware callers look at resultType themselves).
  async callToolRaw(name, args, extra = {}) {
    const headers = paramHeaders(this.tools.get(name), args);
    return this.rpc('tools/call', { name, arguments: args, ...extra }, { extraHeaders: headers });
  }
  async callTool(name, args) {
    // Drive any Multi Round-Trip Request rounds with this client's input handler.
    let extra = {};
    for (let round = 0; round < 5; round++) {
      const m = await this.callToolRaw(name, args, extra);
      if (m.error) throw new Error(`tools/call ${name} failed: ${m.error.code} ${m.error.message}`);
      const r = m.result;
      if (r?.resultType !== 'input_required') return r;
      const inputResponses = {};
      for (const [k, req] of Object.entries(r.inputRequests ?? {})) inputResponses[k] = await this.onInput(req);
      extra = { inputResponses };
      if (r.requestState !== undefined) extra.requestState = r.requestState;
    }
    throw new Error(`tools/call ${name}: too many input_required rounds`);
  }
  async onInput(req) {
    if (req.method === 'elicitation/create') return { action: 'accept', content: { confirmed: true } };
    if (req.method === 'sampling/createMessage')
      return { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'conformance' };
    if (req.method === 'roots/list') return { roots: [] };
    throw new Error(`unexpected input request ${req.method}`);
  }
  listResources() {
    return this.request('resources/list', {});
  }
  readResource(uri) {
    return this.request('resources/read', { uri });
  }
  listPrompts() {
    return this.request('prompts/list', {});
  }
  getPrompt(name, args) {
    return this.request('prompts/get', { name, arguments: args ?? {} });
  }
}

class SessionDownstream {
  constructor(url) {
    this.url = url;
    this.client = new Client(
      { name: 'gateway-conformance-downstream', version: '1.0.0' },
      { capabilities: { elicitation: { form: { applyDefaults: true } }, sampling: {}, roots: {} } },
    );
    this.client.setRequestHandler(ElicitRequestSchema, async (req) => {
      log(`  <- elicitation/create ${JSON.stringify(req.params).slice(0, 300)}`);
      // Accept with only what the scenario asks for; the SDK fills in schema defaults.
      const props = req.params?.requestedSchema?.properties ?? {};
      return { action: 'accept', content: 'confirmed' in props ? { confirmed: true } : {} };
    });
    this.client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'ok' },
      model: 'conformance',
    }));
  }
  async connect() {
    this.transport = new StreamableHTTPClientTransport(new URL(this.url));
    await this.client.connect(this.transport);
    log(`  connected (session ${this.transport.sessionId}), server=${JSON.stringify(this.client.getServerVersion())}`);
  }
  async close() {
    try {
      await this.transport?.terminateSession?.();
    } catch {}
    await this.transport?.close();
  }
  async discover() {
    return null;
  }
  async listTools() {
    const r = await this.client.listTools();
    log(`  -> tools/list: ${JSON.stringify(r).slice(0, 400)}`);
    return r;
  }
  async callTool(name, args) {
    const r = await this.client.request(
      { method: 'tools/call', params: { name, arguments: args } },
      CallToolResultSchema,
      { timeout: 15000 },
    );
    log(`  -> tools/call ${name}: ${JSON.stringify(r).slice(0, 400)}`);
    return r;
  }
  async callToolRaw(name, args) {
    try {
      return { result: await this.callTool(name, args) };
    } catch (e) {
      return { error: { code: e.code, message: e.message } };
    }
  }
  listResources() {
    return this.client.listResources();
  }
  readResource(uri) {
    return this.client.readResource({ uri });
  }
  listPrompts() {
    return this.client.listPrompts();
  }
  getPrompt(name, args) {
    return this.client.getPrompt({ name, arguments: args ?? {} });
  }
}

// ---------------------------------------------------------------------------------------
// Scenario actions (what the suite's reference "everything client" does, via the gateway)
// ---------------------------------------------------------------------------------------

const actions = {
  // List tools and call the first one with {a: 2, b: 3}.
  async initialize(c) {
    const list = await c.listTools();
    const tool = list.tools?.[0];
    if (tool) await c.callTool(tool.name, { a: 2, b: 3 });
  },
  async tools_call(c) {
    return actions.initialize(c);
  },

  async 'json-schema-ref-no-deref'(c) {
    await c.listTools();
    // Give a (wrongly) dereferencing gateway time to hit the canary.
    await sleep(300);
  },

  async 'json-schema-2020-12-preservation'(c) {
    const list = await c.listTools();
    const focal = list.tools.find((t) => t.name === 'json_schema_2020_12_tool');
    if (!focal) throw new Error("focal tool 'json_schema_2020_12_tool' not listed by the gateway");
    await c.callTool('json_schema_echo', { schema: focal.inputSchema });
  },

  async 'request-metadata'(c) {
    await c.discover();
    await c.listTools();
  },

  async 'http-standard-headers'(c) {
    const tools = await c.listTools();
    for (const t of tools.tools ?? []) await c.callTool(t.name, {});
    const res = await c.listResources();
    for (const r of res.resources ?? []) await c.readResource(r.uri);
    const prompts = await c.listPrompts();
    for (const p of prompts.prompts ?? []) await c.getPrompt(p.name, {});
  },

  async 'http-custom-headers'(c) {
    await c.listTools();
    for (const call of context.toolCalls ?? []) await c.callTool(call.name, call.arguments);
  },

  async 'http-invalid-tool-headers'(c) {
    const list = await c.listTools();
    const listed = (list.tools ?? []).map((t) => t.name);
    log(`  gateway lists: ${JSON.stringify(listed)}`);
    const args = (t) =>
      Object.fromEntries(Object.keys(t.inputSchema?.properties ?? {}).map((k) => [k, 'x']));
    for (const t of list.tools ?? []) await c.callToolRaw(t.name, args(t));
    // A downstream client may call a name the gateway never listed (stale cache, typed by
    // hand): the gateway must still not call a tool whose definition is invalid.
    const invalid = [
      'invalid_empty_header', 'invalid_object_header', 'invalid_array_header', 'invalid_null_header',
      'invalid_number_header',
      'invalid_duplicate_same_case', 'invalid_duplicate_diff_case', 'invalid_space_in_name',
      'invalid_colon_in_name', 'invalid_non_ascii_name', 'invalid_control_char_name',
    ].filter((n) => !listed.includes(n));
    for (const n of invalid) {
      const m = await c.callToolRaw(n, { value: 'x' });
      log(`  direct call ${n}: ${m.error ? `refused (${m.error.code} ${m.error.message})` : 'ANSWERED'}`);
    }
  },

  async 'sse-retry'(c) {
    const list = await c.listTools();
    const t = list.tools?.find((x) => x.name === 'test_reconnection') ?? { name: 'test_reconnection' };
    await c.callTool(t.name, {});
  },

  async 'elicitation-sep1034-client-defaults'(c) {
    await c.listTools();
    const r = await c.callTool('test_client_elicitation_defaults', {});
    log(`  result: ${JSON.stringify(r)}`);
  },

  async 'sep-2322-client-request-state'(c) {
    await c.listTools();
    if (c instanceof StatelessDownstream) {
      // As the suite's reference client: call, answer, call an unrelated tool, retry.
      const r1 = (await c.callToolRaw('test_mrtr_echo_state', {})).result;
      if (r1?.resultType === 'input_required') {
        const inputResponses = {};
        for (const [k, req] of Object.entries(r1.inputRequests ?? {})) inputResponses[k] = await c.onInput(req);
        await c.callToolRaw('test_mrtr_unrelated', {});
        const extra = { inputResponses };
        if (r1.requestState !== undefined) extra.requestState = r1.requestState;
        const r1b = await c.callToolRaw('test_mrtr_echo_state', {}, extra);
        if (r1b.error || r1b.result?.resultType === 'input_required')
          throw new Error(`echo_state retry did not complete: ${JSON.stringify(r1b)}`);
      } else {
        throw new Error(`test_mrtr_echo_state: expected input_required, got ${JSON.stringify(r1)}`);
      }
      await c.callTool('test_mrtr_no_state', {});
      await c.callTool('test_mrtr_no_result_type', {});
    } else {
      // A 2025 client: the gateway must bridge input_required into elicitation/create.
      await c.callTool('test_mrtr_echo_state', {});
      await c.callTool('test_mrtr_unrelated', {});
      await c.callTool('test_mrtr_no_state', {});
      await c.callTool('test_mrtr_no_result_type', {});
    }
  },
};

// ---------------------------------------------------------------------------------------

let exitCode = 1;
const deadline = setTimeout(() => {
  log(`deadline of ${deadlineMs} ms reached`);
  finish(1);
}, deadlineMs);

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  stopGateway();
  const t0 = Date.now();
  while (gw && gw.exitCode === null && gw.signalCode === null && Date.now() - t0 < 3000) await sleep(20);
  if (gw && gw.exitCode === null && gw.signalCode === null) gw.kill('SIGKILL');
  if (gwLogPath && fs.existsSync(gwLogPath)) {
    const text = fs.readFileSync(gwLogPath, 'utf8');
    process.stderr.write(`----- gateway log (${gwLogPath}) -----\n${text}\n----- end gateway log -----\n`);
  }
  if (tmpDir && !process.env.GATEWAY_KEEP_TMP) fs.rmSync(tmpDir, { recursive: true, force: true });
  process.exit(code);
}
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => finish(1));
process.on('exit', () => {
  if (gw && gw.exitCode === null && gw.signalCode === null) {
    try {
      gw.kill('SIGKILL');
    } catch {}
  }
});

(async () => {
  const action = actions[scenario];
  if (!action) {
    console.error(`scenario '${scenario}' is not driven through the gateway (see tests/conformance/README.md)`);
    return finish(2);
  }
  try {
    const url = await startGateway();
    const c = downstream === 'stateless' ? new StatelessDownstream(url) : new SessionDownstream(url);
    await c.connect();
    try {
      await action(c);
    } finally {
      await c.close().catch(() => {});
    }
    // Let late upstream traffic (reconnects, notifications) land before the mock is judged.
    await sleep(100);
    log('scenario action completed');
    exitCode = 0;
  } catch (e) {
    log(`scenario action FAILED: ${e?.stack ?? e}`);
    exitCode = 1;
  }
  await finish(exitCode);
})();
