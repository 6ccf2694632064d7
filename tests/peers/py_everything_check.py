"""Checks tests/peers/py_everything.py directly (no gateway) with the Python SDK's own client, in
both generations (`auto`: probes `server/discover` and speaks 2026-07-28; `legacy`: the
`initialize` handshake), over stdio and over Streamable HTTP.

Run: tests/peers/.venv/bin/python tests/peers/py_everything_check.py
Prints one line per (transport, mode) and exits 0 when every check passed, 1 otherwise.

`--url URL --mode auto|legacy [--skip CHECK ...]` runs the same checks against one endpoint
that serves py_everything.py's tools under their own names, such as mcp-gateway's `/mcp` in
front of it: the client must see exactly what it sees directly. `--skip subscribe` leaves
out the resource-subscription checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

SERVER = str(Path(__file__).with_name("py_everything.py"))
COUNTER = "watched://counter"
TOOLS = {"sample", "elicit", "multi_round", "log_during_call", "progress", "touch", "client_caps", "echo"}
MODERN = "2026-07-28"


def text(result: Any) -> str:
    assert not result.is_error, f"tool error: {result.content}"
    return "".join(getattr(c, "text", "") for c in result.content)


class Recorder:
    """The client-side callbacks; records what the server asked and sent."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []
        self.logs: list[tuple[str, Any]] = []
        self.notifications: list[Any] = []

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = "".join(getattr(m.content, "text", "") for m in params.messages)
        self.asked.append(("sampling", prompt))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"echo({prompt})"), model="check-model"
        )

    async def elicitation(self, ctx: Any, params: Any) -> types.ElicitResult:
        schema = params.requested_schema
        self.asked.append(("elicitation", schema))
        content: dict[str, Any] = {}
        for name, prop in schema["properties"].items():
            if "default" in prop:
                content[name] = prop["default"]
            elif "enum" in prop:
                content[name] = prop["enum"][0]
            elif "oneOf" in prop:
                content[name] = prop["oneOf"][0]["const"]
        return types.ElicitResult(action="accept", content=content)

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append((params.level, params.data))

    async def message(self, message: Any) -> None:
        self.notifications.append(message)


async def until(pred: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        await anyio.sleep(0.02)


def make_client(target: Any, mode: str, rec: Recorder) -> Client:
    return Client(
        target,
        mode=mode,
        sampling_callback=rec.sampling,
        elicitation_callback=rec.elicitation,
        logging_callback=rec.logging,
        message_handler=rec.message,
        log_level="debug",  # the 2026-07-28 per-request log opt-in; no effect on legacy connections
        read_timeout_seconds=30,
        cache=None,
    )


SKIP: set[str] = set()


async def check_full(target: Any, mode: str) -> list[str]:
    passed: list[str] = []
    rec = Recorder()
    async with make_client(target, mode, rec) as client:
        modern = client.protocol_version == MODERN
        assert modern == (mode == "auto"), f"{mode}: negotiated {client.protocol_version}"
        caps = client.server_capabilities
        assert caps.tools is not None and caps.resources is not None, caps
        assert "subscribe" in SKIP or caps.resources.subscribe, caps
        assert caps.logging is not None, caps
        passed.append(f"negotiated {client.protocol_version}")

        names = {t.name for t in (await client.list_tools()).tools}
        assert names == TOOLS, names
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert uris == {COUNTER, "static://hello"}, uris
        hello = (await client.read_resource("static://hello")).contents[0]
        assert getattr(hello, "text", None) == "hello", hello
        passed.append("lists+static")

        assert text(await client.call_tool("echo", {"text": "hi there"})) == "hi there"
        passed.append("echo")

        rec.asked.clear()
        assert text(await client.call_tool("sample", {"prompt": "say hi"})) == "sampled: echo(say hi)"
        assert rec.asked == [("sampling", "say hi")], rec.asked
        passed.append("sample")

        rec.asked.clear()
        got = json.loads(text(await client.call_tool("elicit", {})))
        want = {"action": "accept", "content": {"name": "anonymous", "color": "red", "size": "m", "count": 2.5}}
        assert got == want, got
        [(kind, schema)] = rec.asked
        props = schema["properties"]
        assert kind == "elicitation" and props["color"]["enum"] == ["red", "green", "blue"], schema
        assert [o["title"] for o in props["size"]["oneOf"]] == ["Small", "Medium", "Large"], schema
        assert props["name"]["default"] == "anonymous" and props["count"]["default"] == 2.5, schema
        passed.append("elicit")

        rec.asked.clear()
        got = json.loads(text(await client.call_tool("multi_round", {})))
        assert got == {"topic": "weather", "sampled": "echo(Round 2: weather)"}, got
        assert [k for k, _ in rec.asked] == ["elicitation", "sampling"], rec.asked
        passed.append("multi_round")
        if modern:
            passed.append(await drive_multi_round_by_hand(client, rec))

        rec.logs.clear()
        assert text(await client.call_tool("log_during_call", {})) == "logged"
        await until(lambda: len(rec.logs) >= 3, 2)
        assert rec.logs == [("debug", "debug message"), ("info", "info message"), ("warning", "warning message")], (
            rec.logs
        )
        passed.append("log_during_call")

        values: list[tuple[float, float | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            values.append((p, total))

        assert text(await client.call_tool("progress", {"steps": 4}, progress_callback=on_progress)) == "done"
        await until(lambda: len(values) >= 4, 2)
        assert values == [(1, 4), (2, 4), (3, 4), (4, 4)], values
        assert text(await client.call_tool("progress", {}, progress_callback=on_progress)) == "done"
        await until(lambda: len(values) >= 7, 2)
        assert len(values) == 7, values
        passed.append("progress")

        def counter_value(result: types.ReadResourceResult) -> int:
            return int(getattr(result.contents[0], "text", "").split("=")[1])

        before = counter_value(await client.read_resource(COUNTER))
        if "subscribe" in SKIP:
            assert text(await client.call_tool("touch", {"uri": COUNTER})) == "touched"
        elif modern:
            async with client.listen(resource_subscriptions=[COUNTER]) as sub:
                assert sub.honored.resource_subscriptions == [COUNTER], sub.honored
                assert text(await client.call_tool("touch", {"uri": COUNTER})) == "touched"
                event = None
                with anyio.move_on_after(5):
                    async for event in sub:
                        break
                assert event == ResourceUpdated(uri=COUNTER), event
            passed.append("listen+touch")
        else:
            await client.subscribe_resource(COUNTER)

            def updated() -> bool:
                return any(
                    isinstance(n, types.ResourceUpdatedNotification) and str(n.params.uri) == COUNTER
                    for n in rec.notifications
                )

            # Over HTTP the notification rides the GET stream, which the client opens right
            # after the handshake; give it a moment to be established (no replay otherwise).
            await anyio.sleep(0.3)
            assert text(await client.call_tool("touch", {"uri": COUNTER})) == "touched"
            assert await until(updated), rec.notifications
            rec.notifications.clear()
            # An untouched URI notifies nobody; after unsubscribing, a touch notifies nobody.
            await client.unsubscribe_resource(COUNTER)
            assert text(await client.call_tool("touch", {"uri": COUNTER})) == "touched"
            await anyio.sleep(0.3)
            assert not updated(), rec.notifications
            before += 1
            passed.append("subscribe+touch")
        after = counter_value(await client.read_resource(COUNTER))
        assert after == before + 1, (before, after)
        passed.append("counter")

        seen = json.loads(text(await client.call_tool("client_caps", {})))
        assert "sampling" in seen and "form" in seen.get("elicitation", {}), seen
        passed.append(f"client_caps={json.dumps(seen, sort_keys=True)}")
    return passed


async def drive_multi_round_by_hand(client: Client, rec: Recorder) -> str:
    """2026-07-28: drive multi_round's MRTR loop by hand to see its two input rounds and the
    `requestState` they carry: round 1 asks an elicitation, round 2 a sampling request."""
    session = client.session
    kinds: list[str] = []
    responses: types.InputResponses | None = None
    state: str | None = None
    for _ in range(3):
        r = await session.call_tool(
            "multi_round", {}, input_responses=responses, request_state=state, allow_input_required=True
        )
        if not isinstance(r, types.InputRequiredResult):
            break
        assert r.request_state, "each round carries requestState"
        state = r.request_state
        assert r.input_requests and len(r.input_requests) == 1, r
        responses = {}
        for key, req in r.input_requests.items():
            kinds.append(req.method)
            if isinstance(req, types.ElicitRequest):
                responses[key] = await rec.elicitation(None, req.params)
            else:
                assert isinstance(req, types.CreateMessageRequest), req
                responses[key] = await rec.sampling(None, req.params)
    assert isinstance(r, types.CallToolResult), r
    assert json.loads(text(r)) == {"topic": "weather", "sampled": "echo(Round 2: weather)"}, r
    assert kinds == ["elicitation/create", "sampling/createMessage"], kinds
    return "multi_round-mrtr(2 rounds, requestState)"


async def check_resources_only(target: Any, mode: str) -> list[str]:
    rec = Recorder()
    async with make_client(target, mode, rec) as client:
        caps = client.server_capabilities
        assert sorted(caps.model_dump(exclude_none=True)) == ["resources"], caps
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert uris == {COUNTER, "static://hello"}, uris
        got = (await client.read_resource(COUNTER)).contents[0]
        assert getattr(got, "text", "").startswith("counter="), got
        version = client.protocol_version
    return [f"resources-only {version}: caps={sorted(caps.model_dump(exclude_none=True))}"]


def stdio(*extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[SERVER, *extra])


class HttpServer:
    """Starts py_everything.py --http 0 and reads the announced URL."""

    def __init__(self, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, *extra, "--http", "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        kind, _, self.url = line.partition(" ")
        assert kind == "http" and self.url.startswith("http://127.0.0.1:") and self.url.endswith("/mcp"), line

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def run_all() -> bool:
    ok = True

    async def one(label: str, fn: Any, target: Any, mode: str) -> None:
        nonlocal ok
        try:
            with anyio.fail_after(60):
                passed = await fn(target, mode)
            print(f"PASS {label} {mode}: {', '.join(passed)}", flush=True)
        except BaseException:  # noqa: BLE001
            ok = False
            print(f"FAIL {label} {mode}:\n{traceback.format_exc()}", flush=True)

    for mode in ("auto", "legacy"):
        await one("stdio", check_full, stdio(), mode)
        await one("stdio", check_resources_only, stdio("--resources-only"), mode)

    full, res_only = HttpServer(), HttpServer("--resources-only")
    try:
        for mode in ("auto", "legacy"):
            await one(f"http {full.url}", check_full, full.url, mode)
            await one("http", check_resources_only, res_only.url, mode)
    finally:
        full.stop()
        res_only.stop()
    return ok


async def run_one(url: str, mode: str) -> bool:
    try:
        with anyio.fail_after(90):
            passed = await check_full(url, mode)
        print(f"PASS {url} {mode}: {', '.join(passed)}", flush=True)
        return True
    except BaseException:  # noqa: BLE001
        print(f"FAIL {url} {mode}:\n{traceback.format_exc()}", flush=True)
        return False


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--url" in args:
        url = args[args.index("--url") + 1]
        mode = args[args.index("--mode") + 1] if "--mode" in args else "auto"
        SKIP.update(a for i, a in enumerate(args) if i > 0 and args[i - 1] == "--skip")
        sys.exit(0 if anyio.run(run_one, url, mode) else 1)
    sys.exit(0 if anyio.run(run_all) else 1)
