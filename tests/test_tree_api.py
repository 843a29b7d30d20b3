"""The browser's view of a large tree (#19): `/api/session?tree=lazy` leaves a large
listing out (the page lists folders through `/api/tree`), the plain view keeps it, and
`/api/tree?path=` answers for one file or whole file (a link to an unlisted folder)."""

from __future__ import annotations

from pathlib import Path

from gitrtc.server.views import LAZY_ABOVE

from .conftest import live_session
from .support import get_json, make_repo

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


async def test_a_large_session_leaves_its_listing_to_the_tree_api(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"pages/p{n:04}.md": f"{n}\n" for n in range(LAZY_ABOVE + 1)}
    files["figs/one.png"] = PNG
    repo = make_repo(tmp_path / "repo", files)
    async with live_session(repo, ["pages", "figs"]) as live:
        await live.session.folders.ready.wait()
        token = live.tokens["viewer"]
        _s, lazy = await get_json(f"{live.http}/api/session?tree=lazy", token)
        assert lazy["lazy"] is True and lazy["files"] == [] and lazy["binaries"] == []
        assert lazy["files_count"] == LAZY_ABOVE + 2 and lazy["files_version"] == live.session.manifest.files_version
        _s, full = await get_json(f"{live.http}/api/session", token)
        assert len(full["files"]) == LAZY_ABOVE + 1 and "lazy" not in full
        assert [b["path"] for b in full["binaries"]] == ["figs/one.png"]

        _s, one = await get_json(f"{live.http}/api/tree?path=pages/p0007.md", token)
        assert one["files"] == [{"path": "pages/p0007.md", "kind": "text", "room": live.room("pages/p0007.md")}]
        assert one["binaries"] == []
        _s, fig = await get_json(f"{live.http}/api/tree?path=figs/one.png", token)
        assert fig["files"] == [] and [(b["path"], b["type"]) for b in fig["binaries"]] == [
            ("figs/one.png", "image/png")
        ]
        _s, none = await get_json(f"{live.http}/api/tree?path=pages/nothing.md", token)
        assert none["files"] == [] and none["binaries"] == []
        # quick-open: a query in every path answers 50 and says there are more
        _s, many = await get_json(f"{live.http}/api/tree?find=P0", token)
        assert len(many["files"]) == 50 and many["more"] is True
        _s, few = await get_json(f"{live.http}/api/tree?find=p0499", token)
        assert [f["path"] for f in few["files"]] == ["pages/p0499.md"] and few["more"] is False
        status, _body = await get_json(f"{live.http}/api/tree?path=pages/p0007.md", None)
        assert status == 401


async def test_a_small_session_is_listed_whole_even_when_asked_lazily(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"docs/a.md": "a\n", "docs/b.md": "b\n"})
    async with live_session(repo, ["docs"]) as live:
        await live.session.folders.ready.wait()
        _s, info = await get_json(f"{live.http}/api/session?tree=lazy", live.tokens["editor"])
        assert [f["path"] for f in info["files"]] == ["docs/a.md", "docs/b.md"] and "lazy" not in info
