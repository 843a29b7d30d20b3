"""A commit's blobs written as one pack: git itself must read, verify and repack it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from gitrtc.gitpack import PACK_FROM, store_blobs

from .support import git, make_repo

# sizes around the pack entry header's 4-bit and 7-bit size boundaries, and a large one
CONTENTS = [
    b"",
    b"a" * 15,
    b"b" * 16,
    b"c" * 127,
    b"d" * 128,
    b"e" * 2047,
    b"f" * 2048,
    os.urandom(1 << 20 | 0xFFF),
    "caf\u00e9 \u2603\n".encode(),
    b"\x00binary\xff" * 50,
]
CONTENTS += [f"file {i}\n".encode() for i in range(PACK_FROM)]


def test_blobs_go_into_one_pack_that_git_verifies(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "r", {"README.md": "hi\n"})
    repo = pygit2.Repository(str(repo_dir))
    blobs = [*CONTENTS, CONTENTS[3]]  # the same bytes twice: one object, two ids equal
    oids = store_blobs(repo, blobs)
    packs = sorted((repo_dir / ".git/objects/pack").glob("pack-*.idx"))
    assert len(packs) == 1
    verified = git(repo_dir, "verify-pack", "-v", str(packs[0]))
    assert f"non delta: {len(CONTENTS)} objects" in verified
    for oid, data in zip(oids, blobs, strict=True):
        assert oid == pygit2.hash(data)
        shown = subprocess.run(["git", "cat-file", "blob", str(oid)], cwd=repo_dir, capture_output=True, check=True)
        assert shown.stdout == data
    assert oids[-1] == oids[3]
    git(repo_dir, "fsck", "--strict")


def test_few_blobs_stay_loose(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "r", {"README.md": "hi\n"})
    repo = pygit2.Repository(str(repo_dir))
    oids = store_blobs(repo, [f"loose {i}\n".encode() for i in range(PACK_FROM - 1)])
    assert not list((repo_dir / ".git/objects/pack").glob("pack-*"))
    for oid in oids:
        hexid = str(oid)
        assert (repo_dir / ".git/objects" / hexid[:2] / hexid[2:]).is_file()


def test_a_linked_worktree_packs_into_the_common_object_folder(tmp_path: Path) -> None:
    repo_dir = make_repo(tmp_path / "r", {"README.md": "hi\n"})
    git(repo_dir, "worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    repo = pygit2.Repository(str(tmp_path / "wt"))
    oids = store_blobs(repo, [f"worktree {i}\n".encode() for i in range(PACK_FROM)])
    assert len(list((repo_dir / ".git/objects/pack").glob("pack-*.idx"))) == 1
    for oid in oids:
        git(tmp_path / "wt", "cat-file", "-e", str(oid))
        git(repo_dir, "cat-file", "-e", str(oid))


@pytest.mark.parametrize("setting", [("core.sharedRepository", "group"), ("extensions.objectFormat", "sha256")])
def test_repositories_with_their_own_rules_get_loose_blobs_from_libgit2(
    tmp_path: Path, setting: tuple[str, str]
) -> None:
    repo_dir = make_repo(tmp_path / "r", {"README.md": "hi\n"})
    repo = pygit2.Repository(str(repo_dir))
    repo.config[setting[0]] = setting[1]
    if setting[0] == "extensions.objectFormat":
        # libgit2 would refuse to write into a real SHA-256 repository; only the choice is checked
        from gitrtc.gitpack import _objects_dir

        assert _objects_dir(repo) is None
        return
    store_blobs(repo, [f"shared {i}\n".encode() for i in range(PACK_FROM)])
    assert not list((repo_dir / ".git/objects/pack").glob("pack-*"))
