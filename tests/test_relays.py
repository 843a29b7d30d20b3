"""Relays through Redis (issue #21): a real `redis-server` (append-only, in a temporary
folder), the owner (`rtc start --redis`) and two relays (`rtc relay`) as real processes,
pycrdt clients on all three."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pycrdt import Text

from .corpus import corpus_file
from .support import RTC, MemoryTransport, RtcProcess, YClient, async_wait_until, get_json, make_repo, wait_until

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (apt-get install redis-server)")

#: Append-only persistence, no snapshots, in the foreground.
PERSISTENT = ("--appendonly", "yes", "--save", "", "--daemonize", "no")
FILES = {"a.md": "# A\n", "b.md": "# B\n", "c.md": "# C\n", "notes.txt": "notes\n"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on a loopback port, with append-only persistence in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS is not None
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), *PERSISTENT],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_until(up, 20, "redis-server to answer PING")
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


class RelayProcess:
    """`rtc relay` as a real process, on a free port."""

    def __init__(self, url: str, session: str) -> None:
        self.proc = subprocess.Popen(
            [*RTC, "relay", "--redis", url, "--port", "0", session],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"relay (\w+) .*:(\d+)/rooms/", line)
        if found is None:
            self.proc.kill()
            raise AssertionError(f"rtc relay did not start: {line}{self.proc.communicate()[1]}")
        self.id = found.group(1)
        self.port = int(found.group(2))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.communicate(timeout=20)


class Cluster:
    """The owner and its relays; `url(where, path, role)` is a room's URL on one of them."""

    def __init__(self, owner: RtcProcess, relays: list[RelayProcess], rooms: dict[str, str], redis_url: str) -> None:
        self.redis_url = redis_url
        self.owner = owner
        self.relays = relays
        self.rooms = rooms

    def port(self, where: int) -> int:
        """0: the owner; 1, 2…: the relays."""
        return int(self.owner.info["port"]) if where == 0 else self.relays[where - 1].port

    def url(self, where: int, path: str, role: str = "editor", name: str = "Alice", token: str | None = None) -> str:
        token = token or self.owner.info["readonly_token" if role == "viewer" else "token"]
        return f"ws://127.0.0.1:{self.port(where)}/rooms/{self.rooms[path]}?token={token}&name={name}"


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()  # a test restarted it and failed before it was back
    repo = make_repo(tmp_path / "repo", FILES)
    owner = RtcProcess(repo, ["--redis", redis_server.url, *FILES], env={"PYTHONFAULTHANDLER": "1"})
    relays: list[RelayProcess] = []
    made = Cluster(owner, relays, {}, redis_server.url)
    try:
        info = owner.wait_ready()
        relays += [RelayProcess(redis_server.url, info["session"]) for _ in range(2)]
        session = asyncio.run(_session(owner))
        made.rooms = {f["path"]: f["room"] for f in session["files"]}
        yield made
    finally:
        for relay in relays:
            relay.kill()
        owner.kill()
        made.owner.kill()  # a test may have restarted it


async def _session(owner: RtcProcess) -> dict[str, Any]:
    status, body = await get_json(f"{owner.base}/api/session", owner.info["token"])
    assert status == 200, body
    return dict(body)


def trace_patches(name: str, count: int) -> tuple[list[tuple[int, int, str]], str]:
    """The first `count` patches of a sequential editing trace, and the text they make."""
    data = json.loads(gzip.decompress(corpus_file(f"traces/{name}").read_bytes()))
    patches: list[tuple[int, int, str]] = []
    for txn in data["txns"]:
        patches.extend((int(p[0]), int(p[1]), str(p[2])) for p in txn["patches"])
        if len(patches) >= count:
            break
    patches = patches[:count]
    text = ""
    for pos, delete, insert in patches:
        text = text[:pos] + insert + text[pos + delete :]
    return patches, text


def source(client: YClient) -> str:
    return str(client.doc.get("source", type=Text))


async def replay(client: YClient, patches: list[tuple[int, int, str]]) -> None:
    """Type the trace into the client's text, one transaction per patch, yielding often."""
    text = client.doc.get("source", type=Text)
    for i, (pos, delete, insert) in enumerate(patches):
        with client.doc.transaction():
            if delete:
                del text[pos : pos + delete]
            if insert:
                text.insert(pos, insert)
        if i % 20 == 0:
            await asyncio.sleep(0)


def status_json(owner: RtcProcess) -> dict[str, Any]:
    done = subprocess.run([*RTC, "status", "--json"], cwd=owner.repo, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_clients_on_the_owner_and_two_relays_converge_on_editing_traces(cluster: Cluster) -> None:
    traces = {"a.md": "friendsforever_flat.json.gz", "b.md": "seph-blog1.json.gz", "c.md": "automerge-paper.json.gz"}
    plans = {path: trace_patches(name, 600) for path, name in traces.items()}

    async def scenario() -> None:
        # a writer per file, each on another process; a reader of every file on each process
        readers = {(w, p): YClient(cluster.url(w, p, name=f"R{w}")) for w in range(3) for p in traces}
        writers = {p: YClient(cluster.url(w, p, name=f"W{w}")) for w, p in enumerate(traces)}
        typists: list[YClient] = []
        for c in [*readers.values(), *writers.values()]:
            await c.connect()
        try:
            for c in [*readers.values(), *writers.values()]:
                await c.wait_synced()
            for writer in writers.values():
                with writer.doc.transaction():
                    text = writer.doc.get("source", type=Text)
                    del text[0 : len(text)]
            await asyncio.gather(*(replay(writers[p], plans[p][0]) for p in traces))
            for (w, path), reader in readers.items():
                expected = plans[path][1]
                assert source(writers[path]) == expected
                try:
                    await async_wait_until(lambda r=reader, e=expected: source(r) == e, what=f"{path} everywhere")
                except AssertionError:
                    got = source(reader)
                    raise AssertionError(f"{path} on {w} ({reader.close_code}): {got!r}"[:300]) from None
            # the concurrent case: everyone types into one room at once
            typists = [YClient(cluster.url(w, "notes.txt", name=f"T{w}")) for w in range(3)]
            for c in typists:
                await c.connect()
                await c.wait_synced()

            async def type_(client: YClient, letter: str) -> None:
                text = client.doc.get("source", type=Text)
                for _ in range(50):
                    text.insert(len(text) // 2, letter)
                    await asyncio.sleep(0)

            await asyncio.gather(*(type_(c, "xyz"[i]) for i, c in enumerate(typists)))
            await async_wait_until(
                lambda: len({source(c) for c in typists}) == 1 and len(source(typists[0])) == len("notes\n") + 150,
                what="the concurrent typing to converge",
            )
            merged = source(typists[0])
            assert sorted(merged.count(ch) for ch in "xyz") == [50, 50, 50]
            want = {cluster.relays[0].id: 5, cluster.relays[1].id: 5}  # 3 readers, a writer, a typist
            relays: dict[str, int] = {}
            deadline = time.monotonic() + 20
            while relays != want and time.monotonic() < deadline:  # the heartbeats say it within a second
                status = await asyncio.to_thread(status_json, cluster.owner)
                relays = {r["id"]: r["clients"] for r in status["relays"]}
            assert relays == want
        finally:
            for c in [*readers.values(), *writers.values(), *typists]:
                await c.close()
        # a fresh client reads what the owner stored
        async with YClient(cluster.url(0, "a.md")) as fresh:
            await fresh.wait_synced()
            assert source(fresh) == plans["a.md"][1]
        # the in stream was trimmed: ~1,800 updates went through it, a handful remain
        import redis

        bus = redis.Redis.from_url(cluster.redis_url)
        session = cluster.owner.info["session"]
        try:
            await async_wait_until(
                lambda: bus.xlen(f"rtc:{session}:in") < 100,
                what="the in stream to be trimmed",
            )
        finally:
            bus.close()

    asyncio.run(scenario())


async def reconnect(client: YClient, url: str) -> YClient:
    """The same document on a new connection (as y-websocket does after a close)."""
    await client.close()
    again = YClient(url, client.doc)
    await again.connect()
    synced = asyncio.ensure_future(again.synced.wait())
    closed = asyncio.ensure_future(again.closed.wait())
    await asyncio.wait({synced, closed}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    synced.cancel()
    closed.cancel()
    if not again.synced.is_set():
        await again.close()
        raise AssertionError(f"reconnecting to {url} failed: {again.close_code} {again.close_reason}")
    return again


async def reconnect_and_converge(
    cluster: Cluster, path: str, a: YClient, b: YClient, relays: tuple[int, int], expected: str, what: str
) -> None:
    """A and B reconnect (to `relays`, retrying while the session comes back, as
    y-websocket does), end with `expected`, and so does a fresh client of the owner."""
    deadline = time.monotonic() + 30
    while True:
        try:
            a = await reconnect(a, cluster.url(relays[0], path, name="A"))
            b = await reconnect(b, cluster.url(relays[1], path, name="B"))
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        for c in (a, b):
            await async_wait_until(lambda c=c: source(c) == expected, what=what)
    finally:
        await a.close()
        await b.close()
    async with YClient(cluster.url(0, path)) as fresh:
        await fresh.wait_synced()
        assert source(fresh) == expected


def test_a_relay_killed_mid_burst_loses_nothing_and_doubles_nothing(cluster: Cluster) -> None:
    async def scenario() -> None:
        writer = YClient(cluster.url(1, "a.md", name="Writer"))
        on_owner = YClient(cluster.url(0, "a.md", name="Owner side"))
        on_b = YClient(cluster.url(2, "a.md", name="B side"))
        for c in (writer, on_owner, on_b):
            await c.connect()
            await c.wait_synced()
        text = writer.doc.get("source", type=Text)
        words = [f"w{i:03d} " for i in range(300)]
        for i, word in enumerate(words):
            text.insert(len(text), word)
            if i == 150:
                await asyncio.to_thread(cluster.relays[0].kill)  # SIGKILL, mid-burst
            await asyncio.sleep(0)
        expected = "# A\n" + "".join(words)
        assert str(text) == expected
        writer = await reconnect(writer, cluster.url(2, "a.md", name="Writer"))
        try:
            for c in (on_owner, on_b, writer):
                await async_wait_until(lambda c=c: source(c) == expected, what="every edit, once, everywhere")
            # the dead relay's heartbeat expires: the owner forgets it and its clients
            deadline = time.monotonic() + 20
            while True:
                status = await asyncio.to_thread(status_json, cluster.owner)
                if [r["id"] for r in status["relays"]] == [cluster.relays[1].id]:
                    break
                assert time.monotonic() < deadline, status["relays"]
            assert {r["id"]: r["clients"] for r in status["relays"]} == {cluster.relays[1].id: 2}
            assert sorted(p["name"] for p in status["participants"]) == ["B side", "Owner side", "Writer"]
        finally:
            for c in (writer, on_owner, on_b):
                await c.close()
        async with YClient(cluster.url(0, "a.md")) as fresh:
            await fresh.wait_synced()
            assert source(fresh) == expected

    asyncio.run(scenario())


def test_after_a_redis_restart_the_session_resyncs_and_does_not_fork(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        a = YClient(cluster.url(1, "b.md", name="A"))
        b = YClient(cluster.url(2, "b.md", name="B"))
        for c in (a, b):
            await c.connect()
            await c.wait_synced()
        a.doc.get("source", type=Text).insert(4, "before ")
        await async_wait_until(lambda: source(b) == "# B\nbefore ", what="the first edit")
        await asyncio.to_thread(redis_server.kill)  # SIGKILL
        # the relays close their clients (1012) when Redis goes away
        await async_wait_until(lambda: a.closed.is_set() and b.closed.is_set(), what="the relays to drop clients")
        assert a.close_code == b.close_code == 1012
        a.doc.get("source", type=Text).insert(len(source(a)), "A-offline ")
        b.doc.get("source", type=Text).insert(0, "B-offline ")
        await asyncio.to_thread(redis_server.start)
        # clients reconnect (to either relay) as y-websocket does
        await reconnect_and_converge(
            cluster, "b.md", a, b, (2, 1), "B-offline # B\nbefore A-offline ", "both sides resynced"
        )

    asyncio.run(scenario())


def test_kick_and_end_reach_every_relays_clients_and_viewers_cannot_write(cluster: Cluster) -> None:
    owner = cluster.owner

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {owner.info['owner_token']}"}
            async with http.post(f"{owner.base}/api/invite", json={"name": "Bob"}, headers=headers) as r:
                bob_token = (await r.json())["token"]
            bobs = [YClient(cluster.url(w, "a.md", token=bob_token)) for w in (1, 2)]
            viewer = YClient(cluster.url(1, "a.md", role="viewer", name="Vera"))
            others = [YClient(cluster.url(w, "a.md", name=f"Other{w}")) for w in (0, 1, 2)]
            for c in [*bobs, viewer, *others]:
                await c.connect()
                await c.wait_synced()
            # a viewer on a relay is refused, and nothing changes
            viewer.doc.get("source", type=Text).insert(0, "vandal ")
            await async_wait_until(
                lambda: any(b"read-only" in m for m in viewer.auth_messages), what="the viewer to be refused"
            )
            others[2].doc.get("source", type=Text).insert(4, "ok ")
            for c in [*others, *bobs, viewer]:
                await async_wait_until(lambda c=c: "ok " in source(c), what="a later edit everywhere")
            assert all("vandal" not in source(c) for c in others)
            # kick: Bob's connections on both relays close at once
            async with http.post(f"{owner.base}/api/kick", json={"name": "Bob"}, headers=headers) as r:
                assert (await r.json())["closed"] == 2
            for bob in bobs:
                await async_wait_until(bob.closed.is_set, what="Bob's connection to close")
                assert bob.close_code == 4403
            assert not any(c.closed.is_set() for c in others)
            # a kicked token cannot come back through a relay
            again = YClient(cluster.url(2, "a.md", token=bob_token))
            await again.connect()
            await async_wait_until(again.closed.is_set, what="the revoked token to be refused")
            assert again.close_code == 4401
            await again.close()
        # the end: 4410 on every process
        done = await asyncio.to_thread(stop, owner)
        assert done.returncode == 0, done.stderr
        for c in others:
            await async_wait_until(c.closed.is_set, what="the end to close everyone")
        assert [c.close_code for c in others] == [4410, 4410, 4410]
        for c in [*bobs, viewer, *others]:
            await c.close()

    asyncio.run(scenario())


def stop(owner: RtcProcess) -> subprocess.CompletedProcess[str]:
    """`rtc stop`, then wait for `rtc start` to exit; if it does not, its threads' stacks
    (faulthandler, on SIGABRT) say where it hangs."""
    done = subprocess.run([*RTC, "stop"], cwd=owner.repo, capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        try:
            owner.output = owner.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            owner.proc.send_signal(signal.SIGABRT)
            _out, err = owner.proc.communicate(timeout=20)
            raise AssertionError(f"rtc start did not exit after rtc stop:\n{err[-6000:]}") from None
    return done


def test_the_owner_killed_resumes_and_relays_clients_resync(cluster: Cluster, redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a = YClient(cluster.url(1, "c.md", name="A"))
        b = YClient(cluster.url(2, "c.md", name="B"))
        for c in (a, b):
            await c.connect()
            await c.wait_synced()
        a.doc.get("source", type=Text).insert(4, "stored ")
        await async_wait_until(lambda: source(b) == "# C\nstored ", what="the first edit")
        await asyncio.to_thread(cluster.owner.kill)  # SIGKILL
        # the owner's heartbeat stops: the relays close their clients to resync
        await async_wait_until(lambda: a.closed.is_set() and b.closed.is_set(), what="the relays to drop clients")
        assert a.close_code == b.close_code == 1012
        a.doc.get("source", type=Text).insert(len(source(a)), "A-meanwhile ")
        b.doc.get("source", type=Text).insert(0, "B-meanwhile ")
        owner = RtcProcess(cluster.owner.repo, ["--redis", redis_server.url, *FILES])
        cluster.owner = owner  # the fixture stops this one
        await asyncio.to_thread(owner.wait_ready)
        await reconnect_and_converge(
            cluster, "c.md", a, b, (1, 2), "B-meanwhile # C\nstored A-meanwhile ", "both resynced, each edit once"
        )

    asyncio.run(scenario())


def test_presence_crosses_relays_and_hostile_frames_close_only_their_sender(cluster: Cluster) -> None:
    async def scenario() -> None:
        a = YClient(cluster.url(1, "a.md", name="A"))
        b = YClient(cluster.url(2, "a.md", name="B"))
        for c in (a, b):
            await c.connect()
            await c.wait_synced()
        await a.send_awareness({"user": {"name": "A"}})
        await async_wait_until(lambda: any(b'"A"' in f for f in b.awareness_frames), what="A's presence on relay B")
        seen = len(b.awareness_frames)
        await a.send_raw(b"\x00\x02\xff\xff\xff\xff")  # a sync update whose length lies
        await async_wait_until(a.closed.is_set, what="the malformed frame to close its sender")
        assert a.close_code == 1007
        # the owner removed A's presence, and B is still served
        await async_wait_until(
            lambda: any(f.endswith(b"null") for f in b.awareness_frames[seen:]), what="A's presence to be removed"
        )
        assert not b.closed.is_set()
        await b.close()

    asyncio.run(scenario())


def test_an_rtc_join_mirror_through_a_relay_is_a_mirror_as_on_the_owner(cluster: Cluster) -> None:
    """`?client=join` (how `rtc join` connects) crosses a relay: a mirror holds every file
    and keeps none from being deleted, on a relay as on the owner's process; an editor
    through a relay still does."""
    owner = cluster.owner

    async def delete(path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{owner.base}/api/files",
                json={"op": "delete", "path": path, "name": "Owner"},
                headers={"Authorization": f"Bearer {owner.info['owner_token']}"},
            ) as r:
                return r.status, await r.json(content_type=None)

    async def scenario() -> None:
        mirrors = [
            YClient(cluster.url(1, "a.md", name="Mira") + "&client=join"),
            YClient(cluster.url(0, "b.md", name="Mira") + "&client=join"),
        ]
        editor = YClient(cluster.url(2, "c.md", name="Bob"))
        for c in [*mirrors, editor]:
            await c.connect()
            await c.wait_synced()
        status, body = await delete("c.md")
        assert status == 409 and "open by Bob" in body["error"], body
        for path in ("a.md", "b.md"):  # through a relay as through the owner's process
            status, body = await delete(path)
            assert status == 200, body
        session = await _session(owner)
        assert sorted(f["path"] for f in session["files"]) == ["c.md", "notes.txt"]
        for c in [*mirrors, editor]:
            await c.close()

    asyncio.run(scenario())


class RoutingProxy:
    """The documented deployment in a thread: `/rooms/` WebSockets to a relay, everything
    else (`/`, `/api/`) to the owner, on one loopback port (what nginx does in docs)."""

    def __init__(self, owner: str, relay: str) -> None:
        self.owner, self.relay = owner, relay
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(20), "the proxy did not start"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = int(self.runner.addresses[0][1])
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        async with aiohttp.ClientSession() as http:
            if request.path.startswith("/rooms/"):
                return await self._socket(request, http)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with http.request(
                request.method, self.owner + request.path_qs, headers=headers, data=await request.read()
            ) as r:
                return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    async def _socket(self, request: web.Request, http: aiohttp.ClientSession) -> web.StreamResponse:
        inside = web.WebSocketResponse()
        await inside.prepare(request)
        auth = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        async with http.ws_connect(self.relay + request.path_qs, headers=auth, max_msg_size=0) as outside:

            async def up() -> None:
                async for msg in inside:
                    await outside.send_bytes(msg.data)
                await outside.close()

            pump = asyncio.ensure_future(up())
            async for msg in outside:
                await inside.send_bytes(msg.data)
            pump.cancel()
            await inside.close(code=outside.close_code or 1000)
        return inside

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)
        self.loop.close()


def test_a_real_rtc_join_through_a_relay_mirrors_and_holds_no_file(cluster: Cluster, tmp_path: Path) -> None:
    """`rtc join` behind the documented routing (rooms on a relay, the API on the owner)
    mirrors the session both ways, and its files can be deleted as when it joins the
    owner's process (a mirror keeps none open); the delete reaches its folder."""
    from .test_join import start_join

    owner = cluster.owner
    proxy = RoutingProxy(owner.base, f"ws://127.0.0.1:{cluster.port(1)}")
    folder = tmp_path / "mirror"
    folder.mkdir()
    joiner = start_join(f"http://127.0.0.1:{proxy.port}/#t={owner.info['token']}", folder)
    try:
        joiner.wait_for("mirroring", timeout=60)
        wait_until(lambda: (folder / "a.md").exists(), 30, "the mirrored file")
        (folder / "b.md").write_text("# B\nfrom the mirror\n")
        wait_until(lambda: "from the mirror" in (owner.repo / "b.md").read_text(), 60, "the mirror's edit on the owner")

        async def delete() -> tuple[int, Any]:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{owner.base}/api/files",
                    json={"op": "delete", "path": "a.md", "name": "Owner"},
                    headers={"Authorization": f"Bearer {owner.info['owner_token']}"},
                ) as r:
                    return r.status, await r.json(content_type=None)

        status, body = asyncio.run(delete())
        assert status == 200, body
        wait_until(lambda: not (folder / "a.md").exists(), 30, "the delete in the mirror's folder")
    finally:
        joiner.kill()
        joiner.communicate(20)
        proxy.close()


def test_the_official_js_client_works_through_a_relay(cluster: Cluster) -> None:
    from .test_js_client import node_or_skip, run_node

    node = node_or_skip()

    async def scenario() -> None:
        async with YClient(cluster.url(2, "c.md", name="Watcher")) as watcher:
            await watcher.wait_synced()
            result = await run_node(
                node,
                {
                    "server": f"ws://127.0.0.1:{cluster.port(1)}/rooms",
                    "token": cluster.owner.info["token"],
                    "name": "Node Client",
                    "text": {"room": cluster.rooms["c.md"], "append": "from node\n"},
                },
            )
            assert result["text"] == "# C\nfrom node\n"
            await async_wait_until(lambda: source(watcher) == "# C\nfrom node\n", what="the node edit on relay B")

    asyncio.run(scenario())


def test_without_redis_the_single_process_path_imports_no_redis() -> None:
    code = "import sys, gitrtc.cli.runner, gitrtc.server.app; print('redis' in sys.modules)"
    done = subprocess.run([RTC[0], "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_bus_link_keeps_order_raises_error_replies_and_reconnects(redis_server: RedisServer) -> None:
    """`bus.Link` (the streams' own Redis connection): a batch's replies in order, a Redis
    error raised (not taken for a reply), a lost connection failing what waited, and the
    next call connecting again."""
    from redis.exceptions import ResponseError

    from gitrtc.relay import bus

    async def scenario() -> None:
        link = bus.Link(redis_server.url)
        key = f"link-test-{time.monotonic_ns()}"
        ids = await link.run([["XADD", key, "*", "m", bus.pack({"n": i})] for i in range(50)])
        assert len(ids) == 50 and ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(b"-")))
        read = await bus.read(link, key, b"0-0")
        assert [e[b"n"] for _id, e in read] == [str(i).encode() for i in range(50)]
        with pytest.raises(ResponseError):
            await link.run([["XADD", key, "*", "m", b"x"], ["INCR", key]])  # INCR on a stream: WRONGTYPE
        # a blocking read cut off by the server's death fails, and the link reconnects after
        waiting = asyncio.ensure_future(bus.read(link, key, b"$"))
        await asyncio.sleep(0)  # one turn: the read is written (the link is connected) and waits
        await asyncio.to_thread(redis_server.kill)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(waiting, 10)
        await asyncio.to_thread(redis_server.start)
        # (append-only keeps what was written; the last entries may be lost with a SIGKILL)
        (length,) = await link.run([["XLEN", key]])
        assert len(await bus.read(link, key, b"0-0")) == length
        link.close()  # dropped and at once used again: the old connection's end fails nothing new
        assert await link.run([["PING"], ["XLEN", key]]) == [b"PONG", length]
        link.close()

    asyncio.run(scenario())


def test_a_rooms_broadcast_is_published_once_and_visits_no_relay_client() -> None:
    """The owner's cost per update does not grow with the readers on relays: `Room._post`
    visits only direct connections (`Connection.fanout`), and the frame for the relays'
    clients is handed to `Room.relay` once."""
    from pycrdt import Doc

    from gitrtc import protocol
    from gitrtc.origins import Participant
    from gitrtc.rooms import Connection, Room

    class RelayClient(Connection):
        fanout = False

        def post(self, frame: bytes) -> bool:
            raise AssertionError("a relay's client was visited by the room's fan-out")

    async def scenario() -> None:
        room = Room("r", None, "text", Doc(), None)
        published: list[bytes] = []
        room.relay = lambda _room, frame, _sender: published.append(frame)
        alice, bob = (Connection(MemoryTransport(), Participant(name=n, email="", role="editor")) for n in "AB")
        someone = Participant(name="R", email="", role="editor")
        remotes = [RelayClient(MemoryTransport(), someone) for _ in range(50)]
        for conn in (alice, bob, *remotes):
            await room.join(conn)
        writer: Doc[Any] = Doc()
        updates: list[bytes] = []
        writer.observe(lambda e: updates.append(e.update))
        writer.get("source", type=Text).insert(0, "hi")
        frame = protocol.sync_update(updates[0])
        await room.receive(alice, frame)
        await asyncio.sleep(0)  # the room flushes its readers' batches on the next turn
        assert published == [frame]
        bob_transport = bob.transport
        assert isinstance(bob_transport, MemoryTransport) and frame in bob_transport.sent
        room.leave(remotes[0])
        assert remotes[0] not in room.connections and remotes[0] not in room.readers
        await room.close_all(1000, "")
        assert not room.readers

    asyncio.run(scenario())


def test_the_bus_subscriber_gets_one_publishers_order_across_channels(redis_server: RedisServer) -> None:
    """`bus.Publisher` (replies off, one write per turn) to `bus.Subscriber`: what one
    publisher sends on several channels reaches one subscriber in the order published; a
    subscription's confirmation comes before its first message; an unsubscribed channel
    stays silent; `drain` returns once Redis has it all; Redis' death ends the subscriber."""
    from gitrtc.relay import bus

    async def scenario() -> None:
        got: list[bus.Message] = []
        subscriber = await bus.Subscriber.open(redis_server.url, got.extend)
        a, b, c = (f"order-test-{time.monotonic_ns()}-{x}".encode() for x in "abc")
        await subscriber.subscribe(a)
        await subscriber.subscribe(b)
        assert got == [(a, None), (b, None)]
        errors: list[Exception] = []
        publisher = bus.Publisher(bus.Link(redis_server.url), errors.append)
        for i in range(300):
            publisher.add(((a, b, c)[i % 3], {"n": i}))
            if i % 7 == 0:
                await asyncio.sleep(0)  # several writes, several turns
        await publisher.drain()
        await async_wait_until(lambda: len(got) >= 202, what="the publications to arrive")
        messages = [(channel, bus.unpack(data)[b"n"]) for channel, data in got[2:] if data is not None]
        assert messages == [((a, b)[i % 3], str(i).encode()) for i in range(300) if i % 3 != 2]
        assert errors == []
        # unsubscribed from a (the round trip of c's subscription orders it), a stays silent
        del got[:]
        subscriber.unsubscribe(a)
        await subscriber.subscribe(c)
        publisher = bus.Publisher(bus.Link(redis_server.url), errors.append)
        for channel in (a, b, c):
            publisher.add((channel, {"n": channel}))
        await publisher.drain()
        await async_wait_until(lambda: len(got) >= 3, what="b and c's publications")
        assert [(channel, data and bus.unpack(data)[b"n"]) for channel, data in got] == [(c, None), (b, b), (c, c)]
        assert errors == []
        publisher.close()
        await asyncio.to_thread(redis_server.kill)
        await asyncio.wait_for(subscriber.lost, 10)
        with pytest.raises(ConnectionError):
            await subscriber.subscribe(a)
        await asyncio.to_thread(redis_server.start)

    asyncio.run(scenario())


def test_a_relay_subscribes_to_its_clients_rooms_only_and_the_in_stream_is_trimmed(cluster: Cluster) -> None:
    """Per-room channels: a relay receives the broadcasts of the rooms its clients are in
    and no other, and stops when they leave; what the owner sends is never stored in
    Redis; the `in` stream is trimmed once the owner stored what it read."""
    import redis

    session = cluster.owner.info["session"]
    channel = {path: f"rtc:{session}:room:{room}" for path, room in cluster.rooms.items()}
    inbox = f"rtc:{session}:in"
    bus = redis.Redis.from_url(cluster.redis_url)

    def subscribers() -> dict[str, int]:
        numsub = bus.pubsub_numsub(*channel.values())
        counts = {(name if isinstance(name, str) else name.decode()): n for name, n in numsub}
        return {path: counts[name] for path, name in channel.items() if counts.get(name)}

    async def scenario() -> None:
        writer = YClient(cluster.url(1, "a.md", name="Writer"))
        reader = YClient(cluster.url(2, "a.md", name="Reader"))
        other = YClient(cluster.url(2, "b.md", name="Other"))
        for c in (writer, reader, other):
            await c.connect()
            await c.wait_synced()
        try:
            assert subscribers() == {"a.md": 2, "b.md": 1}  # relay 1: a.md; relay 2: a.md, b.md
            text = writer.doc.get("source", type=Text)
            for i in range(300):
                text.insert(len(text), f"w{i} ")
                if i % 10 == 0:
                    await asyncio.sleep(0)
            expected = str(text)
            await async_wait_until(lambda: source(reader) == expected, what="the reader on the other relay")
            assert source(other) == "# B\n"
            await async_wait_until(lambda: bus.xlen(inbox) < 20, what="the in stream to be trimmed")
            assert bus.keys(f"rtc:{session}:out*") == []  # nothing the owner sent is kept
        finally:
            await writer.close()
            await reader.close()
        await async_wait_until(lambda: subscribers() == {"b.md": 1}, what="the relays to unsubscribe from a.md")
        await other.close()
        await async_wait_until(lambda: subscribers() == {}, what="relay 2 to unsubscribe from b.md")

    try:
        asyncio.run(scenario())
    finally:
        bus.close()


def test_a_relay_resyncs_on_a_gap_in_a_channels_numbering_or_a_new_owner_and_not_after_subscribing() -> None:
    """The relay's side of the numbering, per channel: in order it delivers; a number
    skipped on one channel (a publication lost) or a new owner instance closes its
    clients with 1012; a subscription's confirmation starts a channel's numbering afresh
    (what came before it is not owed), so joining a busy room resyncs nobody."""
    from gitrtc.origins import Participant
    from gitrtc.relay import bus
    from gitrtc.relay.relay import RESYNC, Client, Relay
    from gitrtc.rooms import Connection

    async def scenario() -> None:
        relay = Relay(bus.connect("redis://127.0.0.1:1/0"), "redis://127.0.0.1:1/0", "s")  # never connects
        room_a, room_b = bus.room_channel("s", "a"), bus.room_channel("s", "b")

        def client(room: str) -> tuple[Connection, MemoryTransport]:
            transport = MemoryTransport()
            conn = Connection(transport, Participant(name="R", email="", role="relayed"))
            made = Client(next(relay.numbers), room, conn)
            made.admitted.set_result(True)
            relay.clients[made.cid] = made
            relay.rooms.setdefault(room, {})[conn] = b"x"
            return conn, transport

        def code(transport: MemoryTransport) -> int | None:
            return transport.closed[0] if transport.closed else None

        def entry(n: int, frame: bytes, owner: str = "o1") -> bytes:
            return bus.pack({"t": "b", "r": frame[:1], "s": b"", "f": frame, "o": owner, "n": n})

        (_a, on_a), (_b, on_b) = client("a"), client("b")
        relay._received([(room_a, None), (room_b, None), (room_a, entry(7, b"a7")), (room_b, entry(3, b"b3"))])
        relay._received([(room_a, entry(8, b"a8")), (room_b, entry(4, b"b4"))])
        assert on_a.sent == [b"a7", b"a8"] and on_b.sent == [b"b3", b"b4"]
        # a channel subscribed again (its last client had left) starts afresh: no resync
        relay._received([(room_b, None), (room_b, entry(9, b"b9"))])
        await asyncio.sleep(0)
        assert code(on_a) is None and code(on_b) is None and on_b.sent[-1] == b"b9"
        # a gap on one channel resyncs the relay's clients
        relay._received([(room_a, entry(10, b"a10"))])
        await asyncio.sleep(0)
        assert code(on_a) == RESYNC and code(on_b) == RESYNC
        # a new owner instance resyncs too
        (_c, on_c) = client("b")
        relay._received([(room_b, entry(1, b"b-new", owner="o2"))])
        await asyncio.sleep(0)
        assert code(on_c) == RESYNC

    asyncio.run(scenario())


def test_the_in_streams_writer_sends_a_turns_burst_in_one_write_in_order_with_no_task(
    redis_server: RedisServer,
) -> None:
    """`bus.Writer` (a relay's `in` stream): the entries added in one event loop turn go
    to Redis in one write, whole and in order, and cost no task (their replies are checked
    in the connection's callback); an error reply and a lost connection reach `on_error`,
    and the next entry connects again."""
    from gitrtc.relay import bus

    async def scenario() -> None:
        key = f"writer-test-{time.monotonic_ns()}"
        errors: list[Exception] = []
        writer = bus.Writer(bus.Link(redis_server.url), key, errors.append)
        writer.add({"n": -1})
        await writer.drain()  # connected
        tasks = len(asyncio.all_tasks())
        for i in range(300):
            writer.add_packed(bus.pack({"t": "m"}) + bus.field(b"n", str(i).encode()))
        assert len(asyncio.all_tasks()) == tasks  # no task for a burst
        await asyncio.sleep(0)  # the turn ends: one write
        assert (writer.writes, writer.written) == (2, 301)
        for i in range(300, 310):  # written while the burst's replies may still be due
            writer.add({"n": i})
            await asyncio.sleep(0)
        await writer.drain()
        assert errors == []
        link = bus.Link(redis_server.url)
        read = await bus.read(link, key, b"0-0")
        assert [int(e[b"n"]) for _id, e in read] == list(range(-1, 310))
        # an error reply (XADD on a string) reaches on_error
        await link.run([["SET", key + "-string", "x"]])
        wrong = bus.Writer(bus.Link(redis_server.url), key + "-string", errors.append)
        wrong.add({"n": 0})
        await wrong.drain()
        assert len(errors) == 1 and "WRONGTYPE" in str(errors[0])
        wrong.close()
        # a lost connection with entries unanswered reaches on_error; the next one reconnects
        del errors[:]
        await asyncio.to_thread(redis_server.kill)
        writer.add({"n": 310})
        await writer.drain()
        assert errors and all(isinstance(e, (ConnectionError, OSError)) for e in errors)
        await asyncio.to_thread(redis_server.start)
        del errors[:]
        writer.add({"n": 311})
        await writer.drain()
        assert errors == []
        read = await bus.read(link, key, b"0-0")
        assert int(read[-1][1][b"n"]) == 311
        writer.close()
        link.close()

    asyncio.run(scenario())


def test_a_burst_through_a_relay_reaches_readers_on_both_relays_whole_and_in_order(cluster: Cluster) -> None:
    """200 updates sent back to back by a writer on relay A (the relay batches what it
    reads in one turn into one write to Redis): each reader, on relay A and on relay B,
    gets every one exactly once and in the order typed (each arrival shows the text one
    word longer), and nothing of the burst after the update sent behind it."""
    from gitrtc import protocol
    from gitrtc.client import RoomClient

    async def scenario() -> None:
        writer = RoomClient(cluster.url(1, "b.md", name="Writer"), send_local=False)
        readers = [YClient(cluster.url(where, "b.md", name=f"R{where}")) for where in (1, 2)]
        seen: list[list[str]] = [[], []]
        for i, reader in enumerate(readers):

            def note(client: RoomClient, i: int = i) -> None:
                seen[i].append(str(client.doc.get("source", type=Text)))

            reader.on_update = note
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.ensure_future(c.run(http)) for c in (writer, *readers)]
            try:
                for c in (writer, *readers):
                    await asyncio.wait_for(c.synced.wait(), 30)
                text = writer.doc.get("source", type=Text)
                updates: list[bytes] = []
                writer.doc.observe(lambda e: updates.append(e.update))
                words = [f"w{i:03d} " for i in range(200)]
                for word in words:
                    text.insert(len(text), word)
                assert writer.ws is not None
                for update in updates:  # back to back, no turn given up in between
                    await writer.ws.send_bytes(protocol.sync_update(update))
                text.insert(len(text), "end")  # behind the burst: a double would come before it
                await writer.ws.send_bytes(protocol.sync_update(updates[-1]))
                for i in range(2):
                    await async_wait_until(lambda i=i: len(seen[i]) >= 201, what="the burst on both relays")
                expected = ["# B\n" + "".join(words[: k + 1]) for k in range(200)]
                expected.append(expected[-1] + "end")
                assert seen == [expected, expected]
            finally:
                for task in tasks:
                    task.cancel()

    asyncio.run(scenario())
