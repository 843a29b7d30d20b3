"""Soak: dozens of clients making random edits and reconnecting for minutes.

    .venv/bin/python benchmarks/soak.py [--clients 40] [--seconds 180] [--seed 1] [--cells 0.05] [--disk]

Starts a real `rtc start` in a throwaway repository, drives real pycrdt clients over
WebSockets (random inserts and deletes in a Markdown file and in notebook cells, random
disconnects with edits made while offline), then reconnects everyone, waits for
convergence, ends the session with `rtc stop`, and checks every client's document
against the committed files. With `--cells P`, an edit is with probability P a cell
inserted, deleted or moved (as JupyterLab moves: a delete and a copy with the id), online
or offline, and the committed notebook must also hold no cell id twice (the server brings
back cells deleted under someone's edit: never twice). With `--disk`, the owner also edits
`notes.md` or `nb.ipynb` on disk about once a second (read, add a marked line or Markdown
cell, write, as an editor saves) while clients type (inserting only, so that nothing may
remove a marker): every marker must reach the commit (its characters in order), and the
files on disk must end as the commit holds them. Prints figures; exits 1 on any difference. Loopback only,
bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitrtc.documents.notebook_ops import ycell_from_dict  # noqa: E402
from tests.support import RtcProcess, YClient, make_repo  # noqa: E402  (the tests' real client)

NOTEBOOK = (
    json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"c{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": [f"x{i} = {i}"],
                }
                for i in range(10)
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )
    + "\n"
)


class Participant:
    """One simulated person: a doc per file that survives reconnects."""

    def __init__(self, n: int, urls: dict[str, str], rng: random.Random) -> None:
        self.n = n
        self.urls = urls
        self.rng = rng
        self.docs: dict[str, Doc[Any]] = {path: Doc() for path in urls}
        self.clients: dict[str, YClient] = {}
        self.edits = 0
        self.reconnects = 0
        self.cell_ops = 0.0
        self.made = 0
        self.insert_only = False  # `--disk`: no text deleted, so nothing may remove the owner's markers

    def cell_op(self) -> None:
        """A cell inserted, deleted or moved (delete + a copy with its id, as JupyterLab)."""
        cells = self.docs["nb.ipynb"].get("cells", type=Array)
        n, roll = len(cells), self.rng.random()
        if n < 3 or (roll < 0.4 and n < 30):
            self.made += 1
            cid = f"p{self.n}-{self.made}"
            cell: dict[str, Any] = {
                "cell_type": "code",
                "source": f"# {cid}\n",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            cells.insert(self.rng.randint(0, n), ycell_from_dict(cell, cid))
        elif roll < 0.7:
            del cells[self.rng.randrange(n)]
        else:
            i, j = self.rng.randrange(n), self.rng.randrange(n)
            ycell = cells[i]
            if not isinstance(ycell, Map):
                return
            value, moved = ycell.to_py() or {}, str(ycell.get("id"))
            with self.docs["nb.ipynb"].transaction():
                del cells[i]
                cells.insert(min(j, len(cells)), ycell_from_dict(value, moved))
        self.edits += 1

    async def connect(self) -> None:
        for path, url in self.urls.items():
            client = YClient(url, self.docs[path])
            await client.connect()
            await client.wait_synced(60)
            self.clients[path] = client

    async def disconnect(self) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients = {}

    def edit(self) -> None:
        if self.rng.random() < self.cell_ops:
            self.cell_op()
            return
        in_notes = self.rng.random() < 0.5
        if in_notes:
            text = self.docs["notes.md"].get("source", type=Text)
        else:
            cells = self.docs["nb.ipynb"].get("cells", type=Array)
            if len(cells) == 0:
                return
            text = cells[self.rng.randrange(len(cells))]["source"]
        length = len(str(text))
        deletes = not self.insert_only
        if deletes and length > 20 and self.rng.random() < 0.3:
            start = self.rng.randrange(length - 1)
            chars = str(text)
            end = min(length, start + self.rng.randint(1, 3))
            byte_start, byte_end = len(chars[:start].encode()), len(chars[:end].encode())
            del text[byte_start:byte_end]
        else:
            pos = self.rng.randint(0, length)
            text.insert(len(str(text)[:pos].encode()), self.rng.choice(["a", "b", "é", "📊", "\n", f"{self.n}"]))
        self.edits += 1

    async def run(self, until: float) -> None:
        await self.connect()
        while time.monotonic() < until:
            self.edit()
            await asyncio.sleep(self.rng.uniform(0.02, 0.3))
            if self.rng.random() < 0.01:
                await self.disconnect()
                for _ in range(self.rng.randint(0, 5)):
                    self.edit()  # offline edits
                await asyncio.sleep(self.rng.uniform(0.1, 2))
                await self.connect()
                self.reconnects += 1
        await self.disconnect()


def file_text(path: str, doc: Doc[Any]) -> str:
    if path == "notes.md":
        return str(doc.get("source", type=Text))
    return json.dumps([str(c["source"]) for c in doc.get("cells", type=Array)])


def committed_ids(repo: Path) -> list[str]:
    data = subprocess.run(["git", "show", "HEAD:nb.ipynb"], cwd=repo, capture_output=True, text=True, check=True).stdout
    return [c.get("id") for c in json.loads(data)["cells"]]


def committed_text(repo: Path, path: str, kind: str | None = None) -> str:
    """The committed file at `path` as `file_text` shows it (`kind`: its starting name)."""
    data = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True, text=True, check=True).stdout
    if (kind or path) == "notes.md":
        return data
    return json.dumps(["".join(c["source"]) for c in json.loads(data)["cells"]])


async def owner_edits(
    repo: Path, until: float, rng: random.Random, markers: list[str], names: dict[str, str], renames: bool
) -> None:
    """The owner saving from an editor now and then: a marked line added to `notes.md`, or
    a marked Markdown cell (id `owner-K`) inserted into `nb.ipynb`, written as Jupyter does;
    with `renames`, the Markdown file is also renamed back and forth (`names`: its name now)."""
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if renames and rng.random() < 0.3:
            new = "renamed.md" if names["notes.md"] == "notes.md" else "notes.md"
            os.rename(repo / names["notes.md"], repo / new)
            names["notes.md"] = new
            markers.append("")  # a rename: no marker to find
            continue
        marker = f"OWNER-{len(markers)}-SAVED"  # unique: a rename counts too
        if rng.random() < 0.5:
            path = repo / names["notes.md"]
            lines = path.read_text().split("\n")
            lines.insert(rng.randint(0, len(lines)), marker)
            path.write_text("\n".join(lines))
        else:
            path = repo / "nb.ipynb"
            nb = json.loads(path.read_text())
            cell = {"cell_type": "markdown", "id": f"owner-{len(markers)}", "metadata": {}, "source": marker}
            nb["cells"].insert(rng.randint(0, len(nb["cells"])), cell)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        markers.append(marker)


def has_in_order(text: str, marker: str) -> bool:
    """Whether `marker`'s characters are in `text` in order (others may type inside it)."""
    it = iter(text)
    return all(ch in it for ch in marker)


async def soak(
    clients: int,
    seconds: float,
    seed: int,
    repo: Path,
    cells: float = 0.0,
    disk: bool = False,
    renames: bool = False,
) -> dict[str, object]:
    proc = RtcProcess(repo, ["."] if renames else ["notes.md", "nb.ipynb"])  # renames live in a shared folder
    try:
        info = proc.wait_ready(60)
        rooms = {}
        import urllib.request

        request = urllib.request.Request(
            f"{proc.base}/api/session", headers={"Authorization": f"Bearer {info['token']}"}
        )
        with urllib.request.urlopen(request) as response:
            for f in json.loads(response.read())["files"]:
                rooms[f["path"]] = f["room"]
        people = []
        for n in range(clients):
            urls = {
                p: f"{proc.ws_base}{r}?token={info['token']}&name=P{n}&email=p{n}@example.org" for p, r in rooms.items()
            }
            people.append(Participant(n, urls, random.Random(seed * 1000 + n)))
            people[-1].cell_ops = cells
            people[-1].insert_only = disk
        started = time.monotonic()
        markers: list[str] = []
        names = {path: path for path in rooms}  # a path given at the start → its name now
        owner = [owner_edits(repo, started + seconds, random.Random(seed), markers, names, renames)] if disk else []
        await asyncio.gather(*(p.run(started + seconds) for p in people), *owner)
        if disk:
            await asyncio.sleep(3)  # the owner's last save: seen on disk and merged before the check
        converge_start = time.monotonic()
        for p in people:
            await p.connect()
        while True:
            views = {path: {file_text(path, p.docs[path]) for p in people} for path in rooms}
            if all(len(v) == 1 for v in views.values()):
                break
            if time.monotonic() - converge_start > 120:
                raise SystemExit("clients did not converge within 120 s")
            await asyncio.sleep(0.2)
        converged = time.monotonic() - converge_start
        store = sum(f.stat().st_size for f in (repo / ".git" / "rtc" / "sessions").rglob("*") if f.is_file())
        for p in people:
            await p.disconnect()
        # cells deleted under someone's edit came back flagged: commit them as they are
        done = await asyncio.to_thread(proc.stop, "-m", "soak", *(["--take-current"] if cells else []))
        if done.returncode != 0:
            raise SystemExit(f"rtc stop failed: {done.stderr}")
        mismatches = [
            path for path in rooms if committed_text(repo, names[path], path) != file_text(path, people[0].docs[path])
        ]
        ids = committed_ids(repo)
        if disk:
            committed = committed_text(repo, names["notes.md"], "notes.md") + committed_text(repo, "nb.ipynb")
            lost = [m for m in markers if m and not has_in_order(committed, m)]
            if lost:
                mismatches.append(f"the owner's saved lines or cells lost: {lost}")
            for path in names.values():
                on_disk = subprocess.run(["git", "diff", "--quiet", "--", path], cwd=repo, check=False)
                if on_disk.returncode != 0:
                    mismatches.append(f"{path} on disk differs from the commit")
        if len(ids) != len(set(ids)):
            mismatches.append(f"nb.ipynb holds a cell id twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        return {
            "clients": clients,
            "seconds": seconds,
            "edits": sum(p.edits for p in people),
            "reconnects": sum(p.reconnects for p in people),
            "converged_after_s": round(converged, 2),
            "store_bytes_at_end": store,
            "cells_at_end": len(ids),
            "owner_saves": len([m for m in markers if m]),
            "owner_renames": len([m for m in markers if not m]),
            "mismatches": mismatches,
        }
    finally:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cells", type=float, default=0.0, help="share of edits that insert, delete or move a cell")
    parser.add_argument("--disk", action="store_true", help="the owner saves notes.md on disk meanwhile")
    parser.add_argument("--renames", action="store_true", help="with --disk: the owner renames notes.md back and forth")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "soak", {"notes.md": "# Notes\n", "nb.ipynb": NOTEBOOK})
        figures = asyncio.run(soak(args.clients, args.seconds, args.seed, repo, args.cells, args.disk, args.renames))
    print(json.dumps(figures, indent=2))
    sys.exit(1 if figures["mismatches"] else 0)


if __name__ == "__main__":
    main()
