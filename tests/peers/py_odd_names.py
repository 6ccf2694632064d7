"""A stdio MCP server (Python SDK 2.x) whose tool names are not all valid client names.

`delete.all` sanitizes to `delete_all`, which the server also offers; `write file` sanitizes to
`write_file`. Each tool answers its own upstream name, so a test sees which one ran.
"""

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="odd-names", version="0.1.0")


@server.tool(name="delete.all")
def delete_dot_all() -> str:
    """Answers its own name."""
    return "delete.all"


@server.tool(name="delete_all")
def delete_all() -> str:
    """Answers its own name."""
    return "delete_all"


@server.tool(name="write file")
def write_file() -> str:
    """Answers its own name."""
    return "write file"


if __name__ == "__main__":
    server.run("stdio")
