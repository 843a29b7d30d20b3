"""The branch that moved is merged into a notebook once, also across a restart: a
resumed session remembers (in its store) which moved-branch versions it took in, so
the conflicts people resolved do not come back. Real session, real repository."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pycrdt import Array

from gitrtc.conflicts import open_conflicts, resolve
from gitrtc.origins import ServerEdit

from .conftest import live_session
from .support import YClient, async_wait_until, git, make_repo
from .test_notebook_conflicts import move_branch, small_nb


async def test_a_resumed_session_does_not_merge_the_moved_branch_twice(tmp_path: Path) -> None:
    base = small_nb("ind = [1, 7, 8]\n", "other = 1\n")
    repo = make_repo(tmp_path / "r", {"nb.ipynb": json.dumps(base, indent=1) + "\n"})
    theirs = copy.deepcopy(base)
    theirs["cells"][0]["source"] = "ind = [1, 2, 4]\n"
    async with live_session(repo, ["nb.ipynb"]) as live:
        live.session.manifest.port = live.port  # served: a restart resumes it
        room = live.session.rooms.get(live.room("nb.ipynb"))
        async with YClient(live.ws("nb.ipynb")) as client:
            await client.wait_synced()
            source = client.doc.get("cells", type=Array)[0]["source"]
            source.clear()
            source.insert(0, "ind = [3, 7, 8]\n")
            room = live.session.rooms[live.room("nb.ipynb")]
            await async_wait_until(
                lambda: "[3, 7, 8]" in str(room.doc.get("cells", type=Array)[0]["source"]), what="typed"
            )
        move_branch(repo, {"nb.ipynb": (json.dumps(theirs, indent=1) + "\n").encode()})
        refused = await live.session.commit_now("after the branch moved")
        assert not refused.ended and "--take-current" in refused.message
        (conflict,) = open_conflicts(room.doc)
        room.edit(lambda: resolve(room.doc, conflict["id"], "mine"), ServerEdit())  # someone keeps the session's side
        assert open_conflicts(room.doc) == []
        await live.session.save_manifest()
    async with live_session(repo, []) as again:
        assert again.session.resumed
        done = await again.session.commit_now("resolved")
        assert done.ended and done.commit, done.message  # merged once: no conflict comes back
        room = again.session.rooms[again.room("nb.ipynb")]
        assert open_conflicts(room.doc) == []
        await again.session.end("done")
    committed = json.loads(git(repo, "show", "HEAD:nb.ipynb"))
    assert "".join(committed["cells"][0]["source"]) == "ind = [3, 7, 8]\n"
    assert git(repo, "log", "-1", "--format=%s", "HEAD~1").strip() == "moved on"  # on top of the moved branch
