"""Serving one session from many processes through Redis (`rtc start --redis`, `rtc relay`).

- `bus`: the Redis keys of a session, the stream entries, an ordered pipelined writer;
- `owner`: the owner's side: relays' clients become `rooms.Connection`s of the session;
- `relay`: a front process serving WebSocket clients, forwarding them to the owner.

See docs/architecture.md, "Relays through Redis". Imported only with `--redis`.
"""
