"""nbdime's merge cases through a real session: the owner's disk takes one side, a
client (editing as `rtc join` does, through its codec) the other, at the same time."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbdime import merge_notebooks
from nbformat.v4.rwbase import rejoin_lines
from pycrdt import Doc

from gitrtc.documents import open_codec
from gitrtc.documents.notebook_ops import normalized

from .conftest import live_session
from .corpus import nbdime_file
from .support import YClient, async_wait_until, make_repo
from .test_diff_ops import ARGS, SAME_CHANGE_TWICE, _triples


def plain(nb: object) -> object:
    return json.loads(json.dumps(normalized(nb)))


def clean_triples() -> list[object]:
    """The triples nbdime merges without conflict and the CRDT is expected to match."""
    out = []
    for param in _triples():
        base, local, remote = param.values
        args = [rejoin_lines(nbformat.from_dict(json.loads(nbdime_file(n)))) for n in (base, local, remote)]
        _merged, decisions = merge_notebooks(*args, ARGS)
        if not any(d.conflict for d in decisions) and f"{local}+{remote}" not in SAME_CHANGE_TWICE:
            out.append(param)
    return out


@pytest.mark.parametrize(("base_name", "local_name", "remote_name"), clean_triples())
async def test_session_merge_matches_nbdime(tmp_path, base_name, local_name, remote_name) -> None:
    base, local, remote = (nbdime_file(n) for n in (base_name, local_name, remote_name))
    merged, _ = merge_notebooks(*(rejoin_lines(nbformat.from_dict(json.loads(x))) for x in (base, local, remote)), ARGS)
    repo = make_repo(tmp_path / "r", {"nb.ipynb": base})
    async with live_session(repo, ["nb.ipynb"]) as live:
        doc = Doc()
        async with YClient(live.ws("nb.ipynb"), doc) as client:
            await client.wait_synced()
            tmp = repo / "nb.ipynb.tmp"
            tmp.write_bytes(local)
            os.replace(tmp, repo / "nb.ipynb")  # the owner's editor saves one side
            open_codec("nb.ipynb", base).apply_file(doc, remote, "client", base=base)  # a client the other
            room = live.session.rooms[live.room("nb.ipynb")]
            codec = live.session.codecs[live.room("nb.ipynb")]
            expected = plain(merged)
            await async_wait_until(
                lambda: (
                    plain(json.loads(codec.dump(room.doc))) == expected
                    and plain(json.loads(codec.dump(doc))) == expected
                ),
                timeout=20,
                what=f"{local_name}+{remote_name} to match nbdime",
            )
