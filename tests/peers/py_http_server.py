"""The Python SDK 2.x peer (tools `greet` and `add`, from py_server.py) over Streamable HTTP
in stateless mode, for mcp-gateway's transport tests: it answers the 2026-07-28 revision
(`server/discover`, no session, `Mcp-Method` / `Mcp-Name` checked) on 127.0.0.1 only.

Run: tests/peers/.venv/bin/python tests/peers/py_http_server.py PORT   (endpoint /mcp)
"""

import sys

from py_server import server

if __name__ == "__main__":
    port = int(sys.argv[1])
    server.run("streamable-http", host="127.0.0.1", port=port, stateless_http=True)
