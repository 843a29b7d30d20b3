"""Everyone has a credential of their own, so the owner removes exactly one person; and
"where people are" is the file they have open now (issue 18, "Participants and links")."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pycrdt import Awareness, Doc

from gitrtc import protocol
from gitrtc.errors import CLOSE_CODES

from .conftest import Live
from .support import YClient, async_wait_until, get_json


async def post_json(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status, await response.json(content_type=None)


async def join(live: Live, name: str, role: str = "editor") -> str:
    """What the page and `rtc join` do first: the shared link's token for a personal one."""
    status, body = await post_json(f"{live.http}/api/join", live.tokens[role], {"name": name})
    assert status == 200, body
    return str(body["token"])


def room_url(live: Live, path: str, token: str, name: str = "") -> str:
    room = live.session.manifest.session_room if path == "session" else live.room(path)
    return f"ws://127.0.0.1:{live.port}/rooms/{room}?token={token}&name={name}"


async def test_joining_with_the_shared_link_gives_a_personal_token(live: Live) -> None:
    bob = await join(live, "Bob")
    assert bob not in live.tokens.values()
    assert await join(live, "Bob") == bob  # the same person again (a reload): the same one
    assert await join(live, "Carol") != bob
    status, info = await get_json(f"{live.http}/api/session", bob)
    assert status == 200 and info["role"] == "editor" and info["name"] == "Bob"
    viewer = await join(live, "Vic", "viewer")
    status, info = await get_json(f"{live.http}/api/session", viewer)
    assert info["role"] == "viewer" and info["name"] == "Vic"
    # a personal token stays what it is; the shared link still works for new people
    status, body = await post_json(f"{live.http}/api/join", bob, {"name": "Mallory"})
    assert (status, body["token"], body["name"]) == (200, bob, "Bob")
    status, info = await get_json(f"{live.http}/api/session", live.tokens["editor"])
    assert status == 200 and info["name"] is None
    status, _ = await post_json(f"{live.http}/api/join", "not-a-token", {"name": "Eve"})
    assert status == 401


async def test_an_invite_token_knows_its_name(live: Live) -> None:
    token = await live.session.invite("Ada Lovelace", viewer=False)
    status, info = await get_json(f"{live.http}/api/session", token)
    assert status == 200 and info["name"] == "Ada Lovelace" and info["role"] == "editor"
    # the name others see is the invited one, whatever the connection says
    async with YClient(room_url(live, "README.md", token, "Someone else")) as client:
        await client.wait_synced()
        assert [p["name"] for p in live.session.participants()] == ["Ada Lovelace"]


async def test_kick_removes_one_person_who_came_with_the_shared_link(live: Live) -> None:
    bob, carol = await join(live, "Bob"), await join(live, "Carol")
    async with aiohttp.ClientSession() as http:
        bob_ws = await http.ws_connect(room_url(live, "README.md", bob, "Bob"))
        carol_ws = await http.ws_connect(room_url(live, "README.md", carol, "Carol"))
        await bob_ws.receive()  # step 1: both are in
        await carol_ws.receive()
        assert await live.session.kick("Bob") == 1
        closing = await bob_ws.receive()
        while closing.type is aiohttp.WSMsgType.BINARY:
            closing = await bob_ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == CLOSE_CODES["FORBIDDEN"]
        assert closing.extra == "removed by the session owner"
        assert not carol_ws.closed
        await carol_ws.send_bytes(protocol.sync_step1(Doc()))
        answer = await carol_ws.receive()
        assert answer.type is aiohttp.WSMsgType.BINARY
        await carol_ws.close()
    status, _ = await get_json(f"{live.http}/api/session", bob)
    assert status == 401  # Bob's own token is revoked
    status, body = await post_json(f"{live.http}/api/join", live.tokens["editor"], {"name": "Bob"})
    assert status == 403 and "removed by the session owner" in body["error"]  # not back by reloading
    assert await join(live, "Dora")  # the shared link still lets new people in
    await live.session.invite("Bob", viewer=False)  # until the owner asks him back
    assert await join(live, "Bob")


async def test_kick_closes_a_client_that_never_joined_by_its_name(live: Live) -> None:
    async with live.client("README.md", name="Eve") as eve:
        await eve.wait_synced()
        assert await live.session.kick("Eve") == 1
        assert await eve.wait_closed() == CLOSE_CODES["FORBIDDEN"]


async def announce(client: YClient, state: dict[str, Any], awareness: Awareness) -> None:
    awareness.set_local_state(state)
    await client.send_raw(protocol.awareness_frame(awareness.encode_awareness_update([awareness.client_id])))


async def test_where_people_are_is_the_file_they_have_open_now(live: Live) -> None:
    token = await join(live, "Bob")
    readme = YClient(room_url(live, "README.md", token, "Bob"))
    tool = YClient(room_url(live, "src/tool.py", token, "Bob"))
    async with readme, tool:  # a browser keeps every file it opened connected
        await readme.wait_synced()
        await tool.wait_synced()
        # no presence yet: the file opened last
        assert [(p["name"], p["files"]) for p in live.session.participants()] == [("Bob", ["src/tool.py"])]
        async with YClient(room_url(live, "session", token, "Bob")) as session_room:
            await session_room.wait_synced()
            presence = Awareness(session_room.doc)
            await announce(session_room, {"user": {"name": "Bob"}, "file": "README.md"}, presence)

            def where() -> Any:
                people = live.session.participants()
                return people if people and people[0]["file"] == "README.md" else None

            people = await async_wait_until(where, what="Bob's current file from his presence")
            assert people == [
                {"name": "Bob", "email": "", "role": "editor", "file": "README.md", "files": ["README.md"]}
            ]
            _, info = await get_json(f"{live.http}/api/status", live.tokens["owner"])
            assert [p["files"] for p in info["participants"]] == [["README.md"]]
            await announce(session_room, {"user": {"name": "Bob"}, "file": None}, presence)
            await async_wait_until(lambda: live.session.participants()[0]["files"] == [], what="Bob has no file open")


async def test_rtc_join_exchanges_its_token_and_is_listed_in_the_session_room(live: Live, tmp_path: Any) -> None:
    import asyncio

    from gitrtc.mirror import Mirror

    url = f"{live.http}/#t={live.tokens['editor']}"
    (tmp_path / "mirror").mkdir()
    mirror = Mirror(url, tmp_path / "mirror", "Joiner", "", say=lambda line: None)
    running = asyncio.ensure_future(mirror.run())
    try:
        async with live.client("session", name="Watcher") as watcher:
            await watcher.wait_synced()

            def names() -> set[str]:
                out = set()
                for frame in watcher.awareness_frames:
                    payload, _ = protocol.read_var_bytes(frame, 1)
                    count, pos = protocol.read_var_uint(payload, 0)
                    for _ in range(count):
                        _, pos = protocol.read_var_uint(payload, pos)
                        _, pos = protocol.read_var_uint(payload, pos)
                        raw, pos = protocol.read_var_bytes(payload, pos)
                        state = json.loads(raw) if raw else None
                        if state and "user" in state:
                            out.add(state["user"]["name"])
                return out

            await async_wait_until(
                lambda: "Joiner" in names() or running.done(), what="rtc join's presence in the session room"
            )
            if running.done():
                running.result()
            assert mirror.token not in live.tokens.values()
            assert any(i["name"] == "Joiner" and i.get("joined") for i in live.session.manifest.invites)
            assert await live.session.kick("Joiner") >= 1
            try:
                await asyncio.wait_for(running, 20)
            except Exception as exc:  # the mirror stops: its link was revoked
                assert "4403" in str(exc) or "refused" in str(exc)
    finally:
        running.cancel()
