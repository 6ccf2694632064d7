"""A deterministic "everything" MCP server on the Python SDK 2.x (PyPI `mcp`, pinned in
requirements.txt), for tests that compare what a client gets through mcp-gateway with what it
gets directly. One server answers both generations on one endpoint: the session generation
(`initialize`, `Mcp-Session-Id`, server->client requests) and the stateless 2026-07-28 revision
(`server/discover`, `_meta` envelope, Multi Round-Trip Requests via `input_required` results).

Tools (absent with --resources-only):
  sample(prompt)        sampling/createMessage with `prompt`; returns "sampled: <text>"
  elicit()              form elicitation (string+default, enum, titled oneOf enum, number+default);
                        returns {"action": ..., "content": ...} as JSON text
  multi_round()         two rounds of input: an elicitation, then a sampling request built from
                        its answer; returns {"topic": ..., "sampled": ...} as JSON text
  log_during_call()     debug, info, warning log messages during the call; returns "logged"
  progress(steps=3)     `steps` progress notifications (when the caller sent a progress token)
  touch(uri)            bumps watched://counter (when uri is it) and sends resources/updated for
                        `uri` to its subscribers; returns "touched"
  client_caps()         the client capabilities this request carries, as JSON text
  echo(text)            returns `text`
Resources: watched://counter ("counter=N", N = touches so far), static://hello ("hello").

Run: tests/peers/.venv/bin/python tests/peers/py_everything.py [--resources-only]
         [--stdio | --http PORT]
`--stdio` (the default) serves stdin/stdout. `--http PORT` serves Streamable HTTP on
127.0.0.1:PORT, path /mcp, in session mode (which also routes 2026-07-28 requests, recognized
by their MCP-Protocol-Version header, to the SDK's stateless path); once listening it prints ONE
line on stdout, like examples/mcp_test_server.rs does:  `http http://127.0.0.1:<port>/mcp`
(PORT 0 picks a free port). Diagnostics go to stderr.

How the generations are served, and what the SDK (mcp 2.3.0) cannot do in one of them:
- sample / elicit / multi_round use the SDK's resolvers (`Resolve` + `Sample` / `Elicit`):
  for >= 2026-07-28 callers they become `input_required` results (multi_round takes two input
  rounds, the first answer carried in the sealed `requestState`); for 2025 callers they are
  server->client requests on the call's own stream. A 2025 caller over *stateless* HTTP (no
  session) has no back-channel, so these tools fail there; this server runs in session mode.
- Logging: 2025 callers get every message (the SDK leaves `logging/setLevel` filtering to the
  application; this server accepts setLevel so it declares `logging`, and does not filter).
  2026-07-28 callers get messages only when the request's `_meta` carries
  `io.modelcontextprotocol/logLevel` (per-request opt-in, SEP-2577), at or above that level.
- Resource updates: 2026-07-28 callers use `subscriptions/listen` with `resourceSubscriptions`
  (the SDK's ListenHandler + subscription bus); 2025 callers use `resources/subscribe`, which
  MCPServer has no API for: it is added on the low-level server (private `_lowlevel_server`).
  A 2025 subscriber gets `notifications/resources/updated` on its standalone channel (the GET
  SSE stream over HTTP); a touch made before that stream is open is not delivered (no replay).
- --resources-only: MCPServer always registers the tools and prompts handlers (and so declares
  both capabilities); this server unregisters them on the low-level server so only `resources`
  is declared.
"""

from __future__ import annotations

import json
import socket
import sys
import warnings
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.lowlevel.server import HandlerEntry, Server
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel, Field

# Logging is deprecated as of 2026-07-28 (SEP-2577); this server emits logs on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

COUNTER_URI = "watched://counter"
STATIC_URI = "static://hello"


def _titled(choices: dict[str, str]) -> Any:
    """A `json_schema_extra` hook: render a Literal field as a titled single-select enum
    (SEP-1330 `oneOf` of `{const, title}`) instead of a plain `enum`."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("enum", None)
        schema["oneOf"] = [{"const": value, "title": title} for value, title in choices.items()]

    return extra


class Preferences(BaseModel):
    """Your preferences."""

    name: str = Field("anonymous", description="Your name")
    color: Literal["red", "green", "blue"] = Field(description="Favourite colour")
    size: Literal["s", "m", "l"] = Field(
        "m", description="T-shirt size", json_schema_extra=_titled({"s": "Small", "m": "Medium", "l": "Large"})
    )
    count: float = Field(2.5, description="How many")


class Topic(BaseModel):
    """What `multi_round` asks for first."""

    topic: str = Field("weather", description="What to write about")


class State:
    """Process-wide state: the counter behind watched://counter and the 2025 subscribers."""

    def __init__(self) -> None:
        self.touches = 0
        self.lists = 0
        # uri -> {connection key -> session}; the key is the Mcp-Session-Id (HTTP) or "stdio".
        self.subscribers: dict[str, dict[str, ServerSession]] = {}


STATE = State()


def _connection_key(request: Any) -> str:
    headers = getattr(request, "headers", None)
    sid = headers.get("mcp-session-id") if headers is not None else None
    return sid if sid else "stdio"


def _text_of(content: Any) -> str:
    blocks = content if isinstance(content, list) else [content]
    return "".join(getattr(b, "text", "") for b in blocks)


# ---- resolvers (the SDK turns their markers into MRTR rounds or server->client requests) ----


def ask_preferences() -> Elicit[Preferences]:
    return Elicit("Tell me your preferences", Preferences)


def sample_prompt(prompt: str) -> Sample:
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=100,
    )


def ask_topic() -> Elicit[Topic]:
    return Elicit("Round 1: pick a topic", Topic)


def sample_topic(topic: Annotated[Topic, Resolve(ask_topic)]) -> Sample:
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=f"Round 2: {topic.topic}"))],
        max_tokens=100,
    )


# ---- server ----


def build(resources_only: bool = False, list_ttl_ms: int | None = None) -> MCPServer:
    # `--list-ttl MS`: resources/list results are fresh for MS ms and public (a shared cache
    # may serve them to anyone); each one served is counted, and `static://lists` reads the
    # count, so a test can tell a cached list from a fetched one.
    hints = {"resources/list": CacheHint(ttl_ms=list_ttl_ms, scope="public")} if list_ttl_ms else None
    server = MCPServer(name="py-everything", version="0.1.0", log_level="WARNING", cache_hints=hints)

    if list_ttl_ms:

        @server.resource("static://lists", name="lists", description="resources/list served", mime_type="text/plain")
        def lists() -> str:
            return f"lists={STATE.lists}"

    @server.resource(COUNTER_URI, name="counter", description="Increments on each touch", mime_type="text/plain")
    def counter() -> str:
        return f"counter={STATE.touches}"

    @server.resource(STATIC_URI, name="hello", description="A static text", mime_type="text/plain")
    def hello() -> str:
        return "hello"

    low: Server[Any] = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        STATE.subscribers.setdefault(str(params.uri), {})[_connection_key(ctx.request)] = ctx.session
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        STATE.subscribers.get(str(params.uri), {}).pop(_connection_key(ctx.request), None)
        return types.EmptyResult()

    listing = low._request_handlers["resources/list"]  # pyright: ignore[reportPrivateUsage]

    async def counted(ctx: Any, params: Any) -> Any:
        STATE.lists += 1
        return await listing.handler(ctx, params)

    low._request_handlers["resources/list"] = HandlerEntry(listing.params_type, counted)  # pyright: ignore[reportPrivateUsage]
    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)

    if resources_only:
        for method in ("tools/list", "tools/call", "prompts/list", "prompts/get"):
            low._request_handlers.pop(method, None)  # pyright: ignore[reportPrivateUsage]
        return server

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    # Accepted (so `logging` is declared, as this server logs) but not used to filter.
    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)

    @server.tool()
    def sample(
        prompt: str, result: Annotated[types.CreateMessageResult, Resolve(sample_prompt)]
    ) -> str:
        """Ask the client to sample `prompt`; returns "sampled: <text>"."""
        return f"sampled: {_text_of(result.content)}"

    @server.tool()
    def elicit(answer: Annotated[ElicitationResult[Preferences], Resolve(ask_preferences)]) -> str:
        """Ask the client for preferences (form elicitation); returns the action and content as JSON."""
        content = answer.data.model_dump(mode="json") if answer.action == "accept" else None
        return json.dumps({"action": answer.action, "content": content}, sort_keys=True)

    @server.tool()
    def multi_round(
        topic: Annotated[Topic, Resolve(ask_topic)],
        sampled: Annotated[types.CreateMessageResult, Resolve(sample_topic)],
    ) -> str:
        """Two rounds of input: an elicitation, then sampling about its answer."""
        return json.dumps({"topic": topic.topic, "sampled": _text_of(sampled.content)}, sort_keys=True)

    @server.tool()
    async def log_during_call(ctx: Context) -> str:
        """Emits a debug, an info and a warning log message, then returns "logged"."""
        await ctx.debug("debug message", logger_name="py-everything")
        await ctx.info("info message", logger_name="py-everything")
        await ctx.warning("warning message", logger_name="py-everything")
        return "logged"

    @server.tool()
    async def progress(ctx: Context, steps: int = 3) -> str:
        """Emits `steps` progress notifications, then returns "done"."""
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"step {i}")
            await anyio.sleep(0.01)
        return "done"

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        """Sends resources/updated for `uri` to its subscribers (bumping watched://counter)."""
        if uri == COUNTER_URI:
            STATE.touches += 1
        await ctx.notify_resource_updated(uri)  # 2026-07-28: subscriptions/listen streams
        for key, session in list(STATE.subscribers.get(uri, {}).items()):  # 2025: resources/subscribe
            try:
                await session.send_resource_updated(uri)
            except Exception as e:  # noqa: BLE001 - a gone subscriber is dropped
                print(f"py-everything: dropping subscriber {key}: {e!r}", file=sys.stderr)
                STATE.subscribers[uri].pop(key, None)
        return "touched"

    @server.tool()
    def client_caps(ctx: Context) -> str:
        """The client capabilities this request carries, as JSON text."""
        caps = ctx.client_capabilities
        dumped = caps.model_dump(mode="json", by_alias=True, exclude_none=True) if caps is not None else None
        return json.dumps(dumped, sort_keys=True)

    @server.tool()
    def echo(text: str) -> str:
        """Returns `text`."""
        return text

    return server


async def serve_http(server: MCPServer, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    actual = sock.getsockname()[1]
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def announce() -> None:
        while not uv.started:
            await anyio.sleep(0.01)
        print(f"http http://127.0.0.1:{actual}/mcp", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await uv.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    resources_only = False
    list_ttl_ms: int | None = None
    port: int | None = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--resources-only":
            resources_only = True
        elif a == "--list-ttl" and args:
            list_ttl_ms = int(args.pop(0))
        elif a == "--stdio":
            port = None
        elif a == "--http" and args:
            port = int(args.pop(0))
        else:
            print(
                "usage: py_everything.py [--resources-only] [--list-ttl MS] [--stdio | --http PORT]",
                file=sys.stderr,
            )
            return 2
    server = build(resources_only, list_ttl_ms)
    if port is None:
        server.run("stdio")
    else:
        anyio.run(serve_http, server, port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
