"""The official JavaScript Yjs clients (yjs, y-websocket, @jupyter/ydoc under node) edit a
real `rtc start` session; a pycrdt client sees their edits live; the end commit holds them.

Needs node and `npm ci` in tests/js (CI's .ci/run does that); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
from typing import Any

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Text

from gitrtc.conflicts import open_conflicts
from gitrtc.origins import KernelOutput

from .conftest import live_session
from .support import ROOT, RtcProcess, YClient, async_wait_until, get_json, git, make_repo

pytestmark = pytest.mark.node

JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "edit_session.mjs"

NOTEBOOK = (
    json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Analysis\n", "Some text."]},
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "id": "first",
                    "metadata": {},
                    "outputs": [{"name": "stdout", "output_type": "stream", "text": ["42\n"]}],
                    "source": ["print(6 * 7)"],
                },
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    + "\n"
)


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    for package in ("yjs", "y-websocket", "@jupyter/ydoc", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(f"tests/js/node_modules/{package} is missing: run `npm ci` in tests/js")
    return node


async def run_node(node: str, plan: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        json.dumps(plan),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"node client failed ({proc.returncode}): {err.decode()}"
    return json.loads(out.decode().strip().splitlines()[-1])


def test_official_js_clients_edit_a_live_session(tmp_path):
    node = node_or_skip()
    repo = make_repo(tmp_path / "repo", {"README.md": "# Project\n\nHello.\n", "analysis.ipynb": NOTEBOOK})
    rtc = RtcProcess(repo, ["README.md", "analysis.ipynb"])
    try:
        info = rtc.wait_ready()
        token = info["token"]

        async def scenario() -> dict:
            status, session = await get_json(f"{rtc.base}/api/session", token)
            assert status == 200, session
            rooms = {f["path"]: f for f in session["files"]}
            assert rooms["README.md"]["kind"] == "text"
            assert rooms["analysis.ipynb"]["kind"] == "notebook"

            # pycrdt clients watch both rooms while node edits them
            text_doc = Doc()
            text = text_doc.get("source", type=Text)
            nb_doc = Doc()
            nb_model = YNotebook(ydoc=nb_doc)
            url = f"{rtc.ws_base}{{room}}?token={token}&name=Watcher"
            async with (
                YClient(url.format(room=rooms["README.md"]["room"]), text_doc) as tc,
                YClient(url.format(room=rooms["analysis.ipynb"]["room"]), nb_doc) as nc,
            ):
                await tc.wait_synced()
                await nc.wait_synced()
                assert str(text) == "# Project\n\nHello.\n"
                assert len(nb_model.ycells) == 2

                result = await run_node(
                    node,
                    {
                        "server": f"ws://127.0.0.1:{info['port']}/rooms",
                        "token": token,
                        "name": "Node Client",
                        "email": "node@example.org",
                        "text": {"room": rooms["README.md"]["room"], "append": "Edited from node.\n"},
                        "notebook": {
                            "room": rooms["analysis.ipynb"]["room"],
                            "cell": {
                                "cell_type": "code",
                                "source": "total = sum(range(10))\ntotal",
                                "metadata": {},
                                "outputs": [],
                                "execution_count": None,
                            },
                        },
                    },
                )
                assert result["text"] == "# Project\n\nHello.\nEdited from node.\n"
                assert result["cells"][-1]["source"] == "total = sum(range(10))\ntotal"

                # the pycrdt clients saw the same edits arrive
                await async_wait_until(
                    lambda: str(text) == "# Project\n\nHello.\nEdited from node.\n",
                    what="the node edit in the pycrdt text client",
                )
                await async_wait_until(lambda: len(nb_model.ycells) == 3, what="the new cell in the pycrdt client")
                cells = nb_model.get()["cells"]
                assert cells[-1]["source"] == "total = sum(range(10))\ntotal"
                assert [c["id"] for c in cells[:2]] == ["intro", "first"]
            return result

        # a thread of its own: another test's playwright may own this thread's event loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            result = pool.submit(asyncio.run, scenario()).result()
        done = rtc.stop("-m", "Edits from the JS client")
        assert done.returncode == 0, done.stderr
    finally:
        rtc.kill()

    commit = git(repo, "rev-parse", "HEAD").strip()
    assert commit.startswith(done.stdout.strip().splitlines()[0][:7])
    assert git(repo, "show", "HEAD:README.md") == "# Project\n\nHello.\nEdited from node.\n"
    nb = nbformat.reads(git(repo, "show", "HEAD:analysis.ipynb"), as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert [c["cell_type"] for c in nb.cells] == ["markdown", "code", "code"]
    added = nb.cells[-1]
    assert added["source"] == "total = sum(range(10))\ntotal"
    assert added["outputs"] == [] and added["execution_count"] is None
    assert added["id"] == result["cells"][-1]["id"]
    # the untouched cells are unchanged
    original = nbformat.reads(NOTEBOOK, as_version=nbformat.NO_CONVERT)
    assert nb.cells[:2] == original.cells
    message = git(repo, "log", "-1", "--format=%B")
    assert "Co-authored-by: Node Client <node@example.org>" in message, message


class OfflineNode:
    """The official y-websocket client (node, @jupyter/ydoc's YNotebook) that edits a
    notebook while offline and reconnects when told (`offline` in edit_session.mjs)."""

    def __init__(self, node: str, live: Any, plan: dict[str, Any]) -> None:
        self.node = node
        self.plan = {
            "server": f"ws://127.0.0.1:{live.port}/rooms",
            "token": live.tokens["editor"],
            "name": "Node",
            "timeout_ms": 60_000,
            "offline": {"room": live.room("nb.ipynb"), **plan},
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert raw, f"node ended: {(await self.proc.stderr.read()).decode() if self.proc.stderr else ''}"
        return json.loads(raw)

    async def start(self) -> None:
        """Sync, go offline, edit; returns once the edits are made (offline)."""
        self.proc = await asyncio.create_subprocess_exec(
            self.node,
            str(SCRIPT),
            json.dumps(self.plan),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert await self.line() == {"offline": True}

    async def reconnect(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        assert await self.line() == {"resynced": True}

    async def finish(self) -> list[dict[str, Any]]:
        """End the client; the cells as it holds them at the end."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        result = await self.line()
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0
        return list(result["cells"])


def nb_json(*cells: dict[str, Any]) -> str:
    full = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, **cell} for cell in cells]
    return json.dumps({"cells": full, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def sources(doc: Doc) -> dict[str, str]:
    return {str(c["id"]): str(c["source"]) for c in doc.get("cells", type=Array)}


async def test_the_official_client_offline_edit_of_a_deleted_cell_comes_back(tmp_path):
    """y-websocket + YNotebook, offline, append to a cell that a pycrdt client deletes
    meanwhile: on reconnect the cell is back with the edit, flagged for the deleter."""
    node = node_or_skip()
    repo = make_repo(
        tmp_path / "r", {"nb.ipynb": nb_json({"id": "a", "source": "a = 1"}, {"id": "b", "source": "b = 2"})}
    )
    async with live_session(repo, ["nb.ipynb"]) as live:
        client = OfflineNode(node, live, {"append": {"cell": "b", "text": "  # from node"}})
        await client.start()
        room = live.session.rooms[live.room("nb.ipynb")]
        async with live.client("nb.ipynb", name="Alice") as alice:
            await alice.wait_synced()
            del alice.doc.get("cells", type=Array)[1]
            await async_wait_until(lambda: list(sources(room.doc)) == ["a"], what="the delete")
            await client.reconnect()
            expected = {"a": "a = 1", "b": "b = 2  # from node"}
            await async_wait_until(lambda: sources(room.doc) == expected, what="the cell back with the edit")
            (conflict,) = open_conflicts(room.doc)
            assert (conflict["cell"], conflict["kind"], conflict["from"]) == ("b", "deleted", "a delete by Alice")
            await async_wait_until(lambda: sources(alice.doc) == expected, what="Alice sees it")
        cells = await client.finish()
        assert [(c["id"], c["source"]) for c in cells] == list(expected.items())


async def test_the_official_client_offline_move_carries_outputs_and_tags(tmp_path):
    """YNotebook.moveCell (delete + copy) made offline, while a pycrdt client tags the cell
    and a kernel run writes its outputs: the moved cell carries them all, no duplicate."""
    node = node_or_skip()
    cells = ({"id": "a", "source": "print(1)"}, {"id": "b", "source": "b = 2"}, {"id": "c", "source": "c = 3"})
    repo = make_repo(tmp_path / "r", {"nb.ipynb": nb_json(*cells)})
    async with live_session(repo, ["nb.ipynb"]) as live:
        client = OfflineNode(node, live, {"move": [0, 2]})
        await client.start()
        room = live.session.rooms[live.room("nb.ipynb")]
        async with live.client("nb.ipynb", name="Alice") as alice:
            await alice.wait_synced()
            alice.doc.get("cells", type=Array)[0]["metadata"]["tags"] = ["slow"]
            ycell = room.doc.get("cells", type=Array)[0]
            await async_wait_until(lambda: ycell["metadata"].to_py() == {"tags": ["slow"]}, what="the tag")

            def run() -> None:
                ycell["outputs"].append(Map({"output_type": "stream", "name": "stdout", "text": Text("1\n")}))
                ycell["execution_count"] = 4

            room.edit(run, KernelOutput("nb.ipynb"))
            await client.reconnect()
            await async_wait_until(lambda: list(sources(room.doc)) == ["b", "c", "a"], what="the move")
            moved = room.doc.get("cells", type=Array)[2]
            await async_wait_until(lambda: moved.to_py()["execution_count"] == 4, what="the run carried")
            value = moved.to_py()
            assert value["metadata"] == {"tags": ["slow"]} and [o["text"] for o in value["outputs"]] == ["1\n"]
            assert open_conflicts(room.doc) == []
        final = await client.finish()
        assert [c["id"] for c in final] == ["b", "c", "a"]
        assert final[2]["metadata"] == {"tags": ["slow"]} and final[2]["execution_count"] == 4
