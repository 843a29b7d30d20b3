"""The official JavaScript Yjs clients (yjs, y-websocket, @jupyter/ydoc under node) edit a
real `rtc start` session; a pycrdt client sees their edits live; the end commit holds them.

Needs node and `npm ci` in tests/js (CI's .ci/run does that); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text

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
