"""Scripted MCP client on the official Python SDK (PyPI `mcp` 2.x), used by tests/mcp_clients.rs
against the gateway's aggregated endpoint.

Usage: tests/peers/.venv/bin/python tests/clients/py_client.py <gateway base URL> <auto|legacy>

`auto` probes `server/discover` and speaks 2026-07-28; `legacy` forces the `initialize`
handshake. Scenario: connect; list tools; call a tool on the stateless test server (`sl`), on
the session-generation test server (`ss`, prefix `s_`), on the Python SDK server (`py`) and on
server-everything (`ev`); call server-everything's long-running tool and the test server's
`progress` tool with a progress callback; cancel a long `sleep` (anyio cancel scope) and poll
`cancelled_count` until the upstream saw the cancellation; call `add_tool` on `sl` and `ss`
and wait (bounded) for the tools-list-changed signal (legacy: `message_handler`; 2026-07-28:
`Client.listen(tools_list_changed=True)`), then list again.

Prints ONE JSON object with what it observed; exits 1 on an unexpected failure (the JSON then
carries `fatal`).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import anyio
import mcp_types as types
from mcp.client.client import Client


def text(result: Any) -> str | None:
    for c in getattr(result, "content", None) or []:
        if getattr(c, "type", None) == "text":
            return c.text
    return None


async def until(pred, seconds: float):
    """Awaits `pred()` every 50 ms until it is truthy or `seconds` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        v = await pred()
        if v or time.monotonic() >= deadline:
            return v
        await anyio.sleep(0.05)


async def scenario(base: str, mode: str, out: dict[str, Any]) -> None:
    list_changed = {"n": 0}
    messages: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            messages.append(f"exception: {message!r}")
            return
        method = getattr(message, "method", None)
        messages.append(str(method))
        if method == "notifications/tools/list_changed":
            list_changed["n"] += 1

    async with Client(f"{base}/mcp", mode=mode, message_handler=on_message, read_timeout_seconds=30) as client:
        out["protocolVersion"] = client.protocol_version
        info = client.server_info
        out["serverInfo"] = info.model_dump(mode="json", exclude_none=True) if info is not None else None
        out["capabilities"] = client.server_capabilities.model_dump(mode="json", by_alias=True, exclude_none=True)

        async def list_all() -> list[str]:
            names: list[str] = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return names

        out["tools"] = await list_all()

        calls: dict[str, Any] = {}
        out["calls"] = calls

        async def record(key: str, name: str, args: dict[str, Any]) -> None:
            try:
                r = await client.call_tool(name, args)
                calls[key] = {"text": text(r), "isError": bool(r.is_error)}
            except Exception as e:  # noqa: BLE001 - reported, asserted on by the Rust test
                calls[key] = {"error": repr(e), "code": getattr(getattr(e, "error", None), "code", None)}
                out["errors"].append(f"{key}: {e!r}")

        await record("stateless_echo", "sl__echo", {"text": "hello stateless"})
        await record("session_add", "ss__s_add", {"a": 2, "b": 3})
        await record("py_greet", "py__greet", {"name": "gateway"})
        await record("everything_sum", "ev__get-sum", {"a": 4, "b": 5})
        await record("tool_error", "sl__fail", {})

        # Progress.
        progress: dict[str, Any] = {}
        out["progress"] = progress

        async def with_progress(key: str, name: str, args: dict[str, Any]) -> None:
            values: list[dict[str, Any]] = []

            async def cb(p: float, total: float | None, message: str | None) -> None:
                values.append({"progress": p, "total": total})

            try:
                r = await client.call_tool(name, args, progress_callback=cb)
                progress[key] = {"values": values, "text": text(r)}
            except Exception as e:  # noqa: BLE001
                progress[key] = {"values": values, "error": repr(e)}
                out["errors"].append(f"{key}: {e!r}")

        await with_progress("everything", "ev__trigger-long-running-operation", {"duration": 1, "steps": 4})
        await with_progress("stateless", "sl__progress", {"steps": 5})

        # Cancellation: an anyio cancel scope around a long sleep.
        async def count() -> int:
            return int(text(await client.call_tool("sl__cancelled_count", {})) or "0")

        before = await count()
        cancel: dict[str, Any] = {"before": before}
        started = time.monotonic()
        with anyio.move_on_after(0.3) as scope:
            try:
                r = await client.call_tool("sl__sleep", {"ms": 20000})
                cancel["outcome"] = "completed"
                cancel["text"] = text(r)
            except Exception as e:  # noqa: BLE001
                cancel["outcome"] = "error"
                cancel["error"] = repr(e)
        if scope.cancelled_caught:
            cancel["outcome"] = "cancelled"
        cancel["settledMs"] = int((time.monotonic() - started) * 1000)

        async def reached() -> int:
            n = await count()
            return n if n > before else 0

        cancel["after"] = await until(reached, 5)
        cancel["reachedUpstream"] = cancel["after"] > before
        out["cancel"] = cancel
        await record("after_cancel", "sl__echo", {"text": "still here"})

        # list_changed.
        lc: dict[str, Any] = {}
        out["listChanged"] = lc
        modern = client.protocol_version == "2026-07-28"
        lc["mechanism"] = "subscriptions/listen" if modern else "message_handler"
        for server, tool in (("sl", "sl__add_tool"), ("ss", "ss__s_add_tool")):
            name = f"dyn_py_{mode}_{server}"
            expected = f"{server}__{name}"
            entry: dict[str, Any] = {"newTool": expected}
            if modern:
                try:
                    async with client.listen(tools_list_changed=True) as sub:
                        entry["honored"] = sub.honored.model_dump(mode="json", by_alias=True, exclude_none=True)
                        entry["subscriptionId"] = sub.subscription_id
                        r = await client.call_tool(tool, {"name": name})
                        entry["addResult"] = text(r)
                        events: list[str] = []
                        with anyio.move_on_after(5):
                            async for event in sub:
                                events.append(type(event).__name__)
                                break
                        entry["events"] = events
                        entry["notificationSeen"] = "ToolsListChanged" in events
                except Exception as e:  # noqa: BLE001 - a client that cannot observe it reports so
                    entry["notificationSeen"] = False
                    entry["listenError"] = repr(e)
            else:
                seen_before = list_changed["n"]
                r = await client.call_tool(tool, {"name": name})
                entry["addResult"] = text(r)

                async def seen() -> bool:
                    return list_changed["n"] > seen_before

                entry["notificationSeen"] = bool(await until(seen, 5))
                entry["notifications"] = list_changed["n"] - seen_before

            async def listed() -> bool:
                return expected in await list_all()

            entry["newToolListed"] = bool(await until(listed, 5))
            if entry["newToolListed"]:
                entry["newToolCall"] = text(await client.call_tool(expected, {}))
            lc[server] = entry
        out["messages"] = sorted(set(messages))


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("auto", "legacy"):
        print("usage: py_client.py <gateway base URL> <auto|legacy>", file=sys.stderr)
        return 2
    base, mode = sys.argv[1].rstrip("/"), sys.argv[2]
    # `errors`: failures of individual steps (the scenario goes on); `fatal`: what stopped it.
    out: dict[str, Any] = {"client": "python", "mode": mode, "errors": []}
    code = 0
    try:

        async def bounded() -> None:
            with anyio.fail_after(60):
                await scenario(base, mode, out)

        anyio.run(bounded)
    except BaseException as e:  # noqa: BLE001 - every failure ends up in the JSON
        out["fatal"] = "".join(traceback.format_exception(e))[-4000:]
        code = 1
    print(json.dumps(out, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
