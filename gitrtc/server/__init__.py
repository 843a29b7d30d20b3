"""The aiohttp adapter: HTTP API, the browser client's files, and the WebSocket rooms."""

from .app import make_app, serve, serving

__all__ = ["make_app", "serve", "serving"]
