"""JupyterLab's collaboration room server (pycrdt-websocket) under uvicorn, no persistence.

    python benchmarks/peers/pycrdt_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


async def main(port: int) -> None:
    websocket_server = WebsocketServer(auto_clean_rooms=False)
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=256 * 1024 * 1024)
    async with websocket_server:
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
