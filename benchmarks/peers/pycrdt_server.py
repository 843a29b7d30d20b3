"""JupyterLab's collaboration room server (pycrdt-websocket) under uvicorn.

    python benchmarks/peers/pycrdt_server.py PORT                  # no persistence
    python benchmarks/peers/pycrdt_server.py PORT --store DB_PATH  # each room with a SQLiteYStore

Rooms are created and started once, under a lock. pycrdt-websocket 0.16.5's own
`WebsocketServer.get_room` races when several clients open a new room at the same
instant: the second caller sees the room created but not yet started and calls
`room.start()` again, which waits forever on the room's start lock (held for the room's
whole life by the first start), so every client but the first hangs without a sync
step 2. JupyterLab's server side (jupyter-collaboration) creates its rooms itself before
serving them, so this wrapper does the same.

With `--store`, every room gets pycrdt-store's `SQLiteYStore` (one database file for
all rooms, the room name as the document path, the library's defaults otherwise), as
jupyter-collaboration does with its `.jupyter_ystore.db`.
"""

from __future__ import annotations

import argparse
import asyncio

import anyio
import uvicorn
from pycrdt.store import SQLiteYStore
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom


class RoomServer(WebsocketServer):
    """`WebsocketServer` whose rooms are made once (and optionally given a YStore)."""

    def __init__(self, store_path: str | None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.store_path = store_path
        self._room_lock: anyio.Lock | None = None

    async def get_room(self, name: str) -> YRoom:
        if self._room_lock is None:
            self._room_lock = anyio.Lock()
        async with self._room_lock:
            if name not in self.rooms:
                ystore = None
                if self.store_path is not None:
                    store_class = type("BenchYStore", (SQLiteYStore,), {"db_path": self.store_path})
                    ystore = store_class(path=name, log=self.log)
                self.rooms[name] = YRoom(
                    ready=self.rooms_ready, ystore=ystore, exception_handler=self.exception_handler, log=self.log
                )
            room = self.rooms[name]
            await self.start_room(room)
        return room


async def main(port: int, store_path: str | None) -> None:
    websocket_server = RoomServer(store_path, auto_clean_rooms=False)
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=256 * 1024 * 1024)
    async with websocket_server:
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--store", help="SQLite database for the rooms' SQLiteYStore")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.store))
