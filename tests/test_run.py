"""`rtc run` and `runcells`: scripts and `rtc join` users run cells in the shared kernel.

A real `rtc start --kernels` process, the real `rtc` command, a real ipykernel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array

from gitrtc.client import RoomClient
from gitrtc.errors import RequestError
from gitrtc.runcells import Target, run_cells

from .conftest import Live
from .support import RtcProcess, git, make_repo
from .test_cli import run_rtc

CELLS: list[dict[str, Any]] = [
    {
        "cell_type": "code",
        "execution_count": None,
        "id": "c1",
        "metadata": {},
        "outputs": [],
        "source": "import sys\nprint('hello from rtc run')\nprint('to stderr', file=sys.stderr)",
    },
    {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# notes"},
    {
        "cell_type": "code",
        "execution_count": None,
        "id": "c2",
        "metadata": {},
        "outputs": [],
        "source": "from IPython.display import display\n"
        "display({'image/png': 'iVBORw0KGgo=', 'text/plain': '<Figure 1>'}, raw=True)\n40 + 2",
    },
    {"cell_type": "code", "execution_count": None, "id": "c3", "metadata": {}, "outputs": [], "source": "1/0"},
    {
        "cell_type": "code",
        "execution_count": None,
        "id": "c4",
        "metadata": {},
        "outputs": [],
        "source": "print('never')",
    },
]


def notebook() -> str:
    return (
        json.dumps(
            {
                "cells": CELLS,
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            },
            indent=1,
        )
        + "\n"
    )


def one_line_error(done: Any) -> str:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return str(lines[0])


def test_rtc_run_prints_outputs_and_refuses_with_a_reason(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"work/nb.ipynb": notebook(), "notes.md": "notes\n"})
    proc = RtcProcess(repo, ["work/nb.ipynb", "notes.md", "--kernels"])
    try:
        info = proc.wait_ready()
        # in the owner's checkout, from a subfolder: the local session, the path as shared
        done = run_rtc(repo / "work", "run", "nb.ipynb", "0", "2")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "hello from rtc run\n" in out and "to stderr\n" in out
        assert "[image/png]" in out and "iVBOR" not in out  # other mime types summarized
        assert "\n42\n" in out
        assert out.index("hello") < out.index("42")
        link = f"{proc.base}/#t={info['token']}"
        # a failing cell: its traceback, then the rest of the batch cancelled, exit 1
        failed = run_rtc(tmp_path, "run", link, "work/nb.ipynb", "--all")
        assert "ZeroDivisionError" in failed.stdout and "never" not in failed.stdout
        assert "cancelled" in failed.stdout
        assert "\x1b[" not in failed.stdout  # a traceback's colours only on a terminal
        assert "did not complete (cell 3: error, cell 4: cancelled)" in one_line_error(failed)
        assert "only code cells run" in one_line_error(run_rtc(tmp_path, "run", link, "work/nb.ipynb", "1"))
        assert "does not share" in one_line_error(run_rtc(tmp_path, "run", link, "other.ipynb"))
        viewer = f"{proc.base}/#t={info['readonly_token']}"
        assert "viewers cannot run code" in one_line_error(run_rtc(tmp_path, "run", viewer, "work/nb.ipynb", "0"))
        nora = run_rtc(repo, "invite", "Nora", "--no-run").stdout.strip().split("#t=")[1]
        refused = run_rtc(tmp_path, "run", f"{proc.base}/#t={nora}", "work/nb.ipynb", "0")
        assert "does not allow running code" in one_line_error(refused)
        stopped = proc.stop("-m", "ran from the terminal")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        proc.kill()
    saved = json.loads(git(repo, "show", "HEAD:work/nb.ipynb"))
    assert saved["cells"][0]["outputs"][0]["text"] == "hello from rtc run\n"  # written by the server
    assert saved["cells"][2]["outputs"][-1]["data"] == {"text/plain": "42"}


async def test_run_cells_refuses_when_running_is_off(live: Live) -> None:
    target = Target(live.http, f"ws://127.0.0.1:{live.port}", live.tokens["editor"])
    with pytest.raises(RequestError, match="running code is off"):
        await run_cells(target, "analysis.ipynb", [], True, "Script", print)


async def test_room_client_requests_and_syncs(live: Live) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        client = RoomClient(live.ws("analysis.ipynb"))
        await client.connect(http)
        try:
            await client.wait_synced()
            assert len(client.doc.get("cells", type=Array)) > 0
            state = await client.request("kernel", "state")
            assert state["enabled"] is False and "rtc start --kernels" in state["refusal"]
            with pytest.raises(RequestError, match="unknown service"):
                await client.request("nope", "x")
        finally:
            await client.close()
