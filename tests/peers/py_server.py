"""A small stdio MCP server on the Python SDK 2.x, used as a real peer in mcp-gateway's tests.

The SDK answers both generations on the same stdio stream: the stateless 2026-07-28 revision
(`server/discover`, `_meta` on every request) and the session generation (`initialize` ...).

Run: tests/peers/.venv/bin/python tests/peers/py_server.py
"""

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="py-peer", version="0.1.0")


@server.tool()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    server.run("stdio")
