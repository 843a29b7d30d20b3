"""Git through pygit2: the repository, the shared paths, and the end-of-session commit.

These functions block (libgit2 does disk I/O); the session calls them in a thread.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from . import safefs
from .errors import BranchMovedError, CommitError, PathError, RepositoryError, UnsafePathError
from .gitpack import store_blobs


@dataclass(frozen=True, slots=True)
class RepoInfo:
    """Where a session lives: the work tree, the git dir and the branch at the start."""

    workdir: Path
    gitdir: Path
    branch: str  # full ref name, e.g. refs/heads/main
    head: str  # hex id of the branch tip at the start

    @property
    def branch_name(self) -> str:
        """The branch's short name (`main`)."""
        return self.branch.removeprefix("refs/heads/")


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What the end of a session did to the branch."""

    commit: str | None  # hex id, or None when nothing changed
    branch: str
    files: tuple[str, ...]
    coauthors: tuple[str, ...]
    parent: str


def open_repo(start: Path) -> pygit2.Repository:
    """The repository containing `start`; `RepositoryError` if there is none or it is bare."""
    found = pygit2.discover_repository(str(start))
    if found is None:
        raise RepositoryError(f"{start} is not in a git repository: run rtc inside a checkout")
    repo = pygit2.Repository(found)
    if repo.is_bare or repo.workdir is None:
        raise RepositoryError(f"{found} is a bare repository: rtc needs a checkout with files")
    return repo


def repo_info(repo: pygit2.Repository) -> RepoInfo:
    """The work tree, git dir and current branch; refuse detached HEAD and unborn branches."""
    if repo.head_is_detached:
        raise RepositoryError("HEAD is detached: check out a branch first (git switch NAME)")
    if repo.head_is_unborn:
        raise RepositoryError("the branch has no commits yet: make a first commit, then share")
    return RepoInfo(
        workdir=Path(repo.workdir).resolve(),
        gitdir=Path(repo.path).resolve(),
        branch=repo.head.name,
        head=str(repo.head.target),
    )


def owner_identity(repo: pygit2.Repository) -> tuple[str, str]:
    """The owner's (name, email) from git config; needed to author the commit."""
    try:
        sig = repo.default_signature
    except (KeyError, pygit2.GitError):
        raise RepositoryError("git does not know who you are: set git config user.name and user.email") from None
    return sig.name, sig.email


def resolve_paths(repo: RepoInfo, cwd: Path, paths: list[str], unchanged: set[str] | None = None) -> list[str]:
    """The repository-relative (`/`-separated) files the given paths stand for.

    A folder (or no path: the current folder) stands for its tracked and
    untracked-but-not-ignored files. Raises `PathError` for a path that does not exist,
    lies outside the repository, or reaches outside it through a symlink. `unchanged`, if
    given, gets the listed files that hold their blob at HEAD (see `_ls_files`).
    """
    pygit_repo = pygit2.Repository(str(repo.gitdir))
    targets = paths or ["."]
    chosen: dict[str, None] = {}
    listing: list[str] | None = None
    for raw in targets:
        given = Path(raw)
        absolute = given if given.is_absolute() else cwd / given
        if not os.path.lexists(absolute):
            raise PathError(f"{raw}: no such file or folder")
        real = absolute.resolve()
        if not _inside(real, repo.workdir):
            raise PathError(f"{raw}: outside the repository {repo.workdir} (or a symlink out of it)")
        if _inside(real, repo.gitdir) or real.name == ".git":
            raise PathError(f"{raw}: inside the .git folder, which cannot be shared")
        rel = real.relative_to(repo.workdir).as_posix()
        if real.is_dir():
            if listing is None:
                listing = _listed_files(pygit_repo, unchanged)
            prefix = "" if rel == "." else rel + "/"
            for path in listing:
                if path.startswith(prefix):
                    chosen[path] = None
        else:
            chosen[rel] = None
    return sorted(chosen)


def _listed_files(repo: pygit2.Repository, unchanged: set[str] | None = None) -> list[str]:
    """Tracked files plus untracked files that are not ignored (`git ls-files`: one pass
    in C, ~10x faster than a status on 100,000 files; pygit2's status without git)."""
    listed = _ls_files(repo, unchanged)
    if listed is not None:
        return listed
    files = {entry.path for entry in repo.index}
    for path, flags in repo.status(untracked_files="all").items():
        if flags & pygit2.enums.FileStatus.WT_NEW:
            files.add(path)
        if flags & pygit2.enums.FileStatus.WT_DELETED:
            files.discard(path)
    return sorted(files)


def _ls_files(repo: pygit2.Repository, unchanged: set[str] | None = None) -> list[str] | None:
    """`git ls-files` of the work tree: tracked and not-ignored untracked files, less the
    tracked ones deleted; None where git cannot be run. `unchanged` gets the tracked files
    that hold their blob at HEAD: not changed in the work tree (git's own stat comparison
    with the index, as `git status` makes it, racily clean entries compared by content;
    the same pass that finds the deleted ones) nor staged. A large tree's start need not
    read these (`launch`). The git processes run at the same time: the folder walk and
    the stat pass overlap (`git status` does both in one process, with threads)."""
    base = ["git", f"--git-dir={repo.path}", f"--work-tree={repo.workdir}"]
    runs = [
        [*base, "ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard"],
        [*base, "ls-files", "-z", "-t", "--modified", "--deleted"],
    ]
    if unchanged is not None:
        runs.append([*base, "diff-index", "-z", "--cached", "--name-only", "HEAD", "--"])
    try:
        outs = _run_all(runs, cwd=repo.workdir)
    except (OSError, subprocess.CalledProcessError):
        return None
    if outs[0] is None or outs[1] is None:
        return None
    tagged = [(p[:1], p[2:]) for p in outs[0].split(b"\0") if len(p) > 2]
    changed = [(p[:1], p[2:]) for p in outs[1].split(b"\0") if len(p) > 2]
    gone = {p for tag, p in changed if tag == b"R"}
    names = {p for _tag, p in tagged if not p.endswith(b"/") and p not in gone}
    if unchanged is not None and outs[2] is not None:  # None: no HEAD yet, every file is new
        differ = {p for _tag, p in changed} | {p for p in outs[2].split(b"\0") if p}
        unchanged.update(os.fsdecode(p) for tag, p in tagged if tag == b"H" and p not in differ)
    return sorted(os.fsdecode(p) for p in names)


def _run_all(commands: list[list[str]], cwd: str | None) -> list[bytes | None]:
    """Run `commands` at the same time; each one's stdout, None for one that failed."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd) for c in commands]
    outs: list[bytes | None] = []
    for proc in procs:  # each read to its end: neither blocks on a full pipe for long
        out, _ = proc.communicate()
        outs.append(out if proc.returncode == 0 else None)
    return outs


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def blob_at(repo: pygit2.Repository, commit: str, path: str) -> bytes | None:
    """The bytes of `path` in `commit`, or None if it is not there."""
    return blob_in(repo[commit].peel(pygit2.Tree), path)


def blob_in(tree: pygit2.Tree, path: str) -> bytes | None:
    """The bytes of `path` in `tree`, or None if it is not there."""
    try:
        obj = tree[path]
    except KeyError:
        return None
    return obj.data if isinstance(obj, pygit2.Blob) else None


def commit_session(
    repo: pygit2.Repository,
    info: RepoInfo,
    changes: dict[str, bytes],
    message: str,
    coauthors: list[tuple[str, str]],
    update_worktree: bool = True,
    links: dict[str, str] | None = None,
    absorbed: dict[str, bytes] | None = None,
    removed: Sequence[str] = (),
) -> CommitResult:
    """Make the one commit of a session on its branch, compare-and-swap.

    `changes` maps paths to their new bytes. Only paths whose bytes differ from the
    branch tip are committed. If the branch moved since the start, the commit goes on
    top of the new tip: paths the moved commits also changed are merged three-way
    (base = the session's base, git's line merge or nbdime), and a conflict raises
    `BranchMovedError` without committing. With `update_worktree`, the index entries of
    committed paths are updated (only those) so `git status` is clean for them, and
    merged files still holding the session's bytes on disk get the merged bytes.
    `links` maps shared paths that became symbolic links to their link text: they are
    committed as links (mode 120000), as git would, never as their target.
    `absorbed` maps paths whose documents already merged the branch's version (those
    bytes) to it: while the tip still holds those bytes they are not merged again. `removed`:
    paths that left the session (deleted, or the old name of a renamed file): taken out of
    the tree (and the index) when the tip still has them.
    """
    ref = repo.references.get(info.branch)
    if ref is None:
        raise CommitError(f"branch {info.branch_name} no longer exists: the result stays in the store")
    tip = repo[ref.target].peel(pygit2.Commit)
    session_bytes = dict(changes)
    changes = dict(changes)
    merged: set[str] = set()
    if str(tip.id) != info.head:
        from .merge.files import merge_file  # here: rtc stop/status import this module and stay light

        conflicts = []
        for path in sorted(changes):
            base, ours = blob_at(repo, info.head, path), blob_at(repo, str(tip.id), path)
            if base == ours or (absorbed is not None and absorbed.get(path) == ours):
                continue  # the moved commits left this path alone, or the session took them in
            result = merge_file(path, base, ours, changes[path])
            if result.conflicts:
                conflicts.append(path)
            changes[path] = result.data
            merged.add(path)
        if conflicts:
            raise BranchMovedError(
                f"{info.branch_name} moved during the session and its new commits conflict with the "
                f"session in {', '.join(conflicts[:3])}: nothing was committed; the session stays open "
                "(rtc stop --onto-branch NAME commits it on a new branch)"
            )
    tip_tree = tip.tree
    changed = {p: data for p, data in changes.items() if blob_in(tip_tree, p) != data}
    linked = _changed_links(repo, tip_tree, links or {})
    gone = sorted(p for p in removed if p not in changes and p not in linked and _in_tree(tip_tree, p))
    if not changed and not linked and not gone:
        return CommitResult(None, info.branch_name, (), (), str(tip.id))
    paths = sorted(changed)
    blobs = store_blobs(repo, [changed[path] for path in paths])
    entries = {
        path: pygit2.IndexEntry(path, oid, pygit2.enums.FileMode(_mode_for(tip_tree, info.workdir, path)))
        for path, oid in zip(paths, blobs, strict=True)
    }
    entries.update(linked)
    edits: dict[str, tuple[pygit2.Oid, int] | None] = {p: (e.id, e.mode) for p, e in entries.items()}
    edits.update(dict.fromkeys(gone))
    tree = _tree_with(repo, tip_tree, edits)
    name, email = owner_identity(repo)
    author = pygit2.Signature(name, email)
    full_message = with_trailers(message, coauthors, email)
    oid = repo.create_commit(None, author, author, full_message, tree, [tip.id])
    try:
        ref.set_target(oid, f"rtc: {message.splitlines()[0] if message else 'session'}")
    except pygit2.GitError as exc:
        raise CommitError(
            f"{info.branch_name} changed while committing ({exc}): the result stays in the store"
        ) from exc
    if update_worktree:
        _write_merged(info.workdir, {p: changed[p] for p in merged if p in changed}, session_bytes)
        _update_index(repo, entries, gone)
    credited = tuple(format_coauthor(n, e) for n, e in coauthors if e.lower() != email.lower())
    return CommitResult(str(oid), info.branch_name, tuple(sorted({*entries, *gone})), credited, str(tip.id))


def _changed_links(repo: pygit2.Repository, tree: pygit2.Tree, links: dict[str, str]) -> dict[str, pygit2.IndexEntry]:
    """Index entries (mode 120000, blob = the link text) of the links `tree` lacks."""
    out = {}
    for path, text in links.items():
        oid = repo.create_blob(os.fsencode(text))
        try:
            entry = tree[path]
            if entry.filemode == pygit2.enums.FileMode.LINK and entry.id == oid:
                continue
        except KeyError:
            pass
        out[path] = pygit2.IndexEntry(path, oid, pygit2.enums.FileMode.LINK)
    return out


def create_branch(repo: pygit2.Repository, name: str, commit: str) -> str:
    """Create branch `name` at `commit`; its full ref name. Refuses an existing or bad name."""
    ref = f"refs/heads/{name}"
    if not pygit2.reference_is_valid_name(ref):
        raise CommitError(f"{name!r} is not a valid branch name")
    if ref in repo.references:
        raise CommitError(f"branch {name} already exists: choose another name for --onto-branch")
    repo.references.create(ref, repo[commit].id)
    return ref


def _write_merged(workdir: Path, merged: dict[str, bytes], session: dict[str, bytes]) -> None:
    """Put merged results in the work tree where the file still holds the session's bytes."""
    for path, data in merged.items():
        try:
            current = safefs.read_file(workdir, path)
        except OSError:  # gone, unreadable, or a symbolic link now (`UnsafePathError`)
            continue
        if current != session[path]:
            continue  # the owner changed it since: leave their file alone
        try:
            safefs.replace_file(workdir, path, data)
        except UnsafePathError:
            continue  # it became a symbolic link meanwhile: never written through


def _in_tree(tree: pygit2.Tree, path: str) -> bool:
    try:
        tree[path]
    except KeyError:
        return False
    return True


def _tree_with(
    repo: pygit2.Repository, base: pygit2.Tree | None, blobs: dict[str, tuple[pygit2.Oid, int] | None]
) -> pygit2.Oid:
    """`base` with the given path → (blob, mode) entries set (None: removed): only the
    folders on those paths are rewritten (reading the whole tree into an index and
    writing it back costs as much as the rest of the commit, and checks every object of
    the tree). A folder left empty is removed, as git has no empty folders."""
    here: dict[str, tuple[pygit2.Oid, int] | None] = {}
    below: dict[str, dict[str, tuple[pygit2.Oid, int] | None]] = {}
    for path, entry in blobs.items():
        head, sep, rest = path.partition("/")
        if sep:
            below.setdefault(head, {})[rest] = entry
        else:
            here[head] = entry
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name, entry in here.items():
        if entry is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, entry[0], entry[1])
    for name, inner in below.items():
        child = base[name] if base is not None and name in base else None
        subtree = _tree_with(repo, child if isinstance(child, pygit2.Tree) else None, inner)
        if len(repo[subtree].peel(pygit2.Tree)) == 0:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, subtree, pygit2.enums.FileMode.TREE)
    return builder.write()


def _mode_for(tree: pygit2.Tree, workdir: Path, path: str) -> int:
    """The path's mode in `tree`; for a new file, executable or not as it is on disk."""
    try:
        return tree[path].filemode
    except KeyError:
        pass
    try:
        st = safefs.lstat(workdir, path)  # a link's own mode, never its target's
    except OSError:
        st = None
    executable = st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o100)
    return pygit2.enums.FileMode.BLOB_EXECUTABLE if executable else pygit2.enums.FileMode.BLOB


def _update_index(repo: pygit2.Repository, entries: dict[str, pygit2.IndexEntry], gone: Sequence[str] = ()) -> None:
    """Point the committed paths' index entries at the new blobs; leave all else alone.

    The entries carry no stat data, so git compares those files' content once (and then
    records their stat) instead of this writing every blob a second time.
    """
    index = repo.index
    index.read()
    for entry in entries.values():
        index.add(entry)
    for path in gone:
        if path in index:
            index.remove(path)
    index.write()


_SLUG = re.compile(r"[^a-z0-9]+")


def format_coauthor(name: str, email: str) -> str:
    """`Name <email>`; a participant without an email gets a reserved `.invalid` address."""
    if not email:
        slug = _SLUG.sub("-", name.lower()).strip("-") or "anonymous"
        email = f"{slug}@users.gitrtc.invalid"
    return f"{name} <{email}>"


def with_trailers(message: str, coauthors: list[tuple[str, str]], owner_email: str) -> str:
    """The message followed by one `Co-authored-by:` trailer per co-author (not the owner)."""
    lines = []
    seen: set[str] = set()
    for name, email in coauthors:
        if email and email.lower() == owner_email.lower():
            continue
        trailer = f"Co-authored-by: {format_coauthor(name, email)}"
        if trailer not in seen:
            seen.add(trailer)
            lines.append(trailer)
    body = message.rstrip("\n")
    return body + ("\n\n" + "\n".join(lines) if lines else "") + "\n"


# -- for `rtc join`: the joiner's checkout (no git subprocesses) ----------------------


@dataclass(frozen=True, slots=True)
class Checkout:
    """The checkout a folder is in: its work tree and its git dir."""

    workdir: Path
    gitdir: Path


def checkout_of(folder: Path) -> Checkout | None:
    """The checkout containing `folder`, or None for a plain folder (or a bare repository)."""
    found = pygit2.discover_repository(str(folder))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    if repo.is_bare or repo.workdir is None:
        return None
    return Checkout(Path(repo.workdir).resolve(), Path(repo.path).resolve())


def has_commit(checkout: Checkout, commit: str) -> bool:
    """True if the checkout's repository has `commit` (a full hex id) as a commit."""
    repo = pygit2.Repository(str(checkout.gitdir))
    try:
        obj = repo.get(commit)
    except (ValueError, pygit2.GitError):
        return False
    return isinstance(obj, pygit2.Commit)


def committed_blob(checkout: Checkout, commit: str, path: Path) -> bytes | None:
    """The bytes the file at `path` (absolute, in the work tree) has in `commit`; None if
    it is not there."""
    try:
        rel = path.relative_to(checkout.workdir).as_posix()
    except ValueError:
        return None
    return blob_at(pygit2.Repository(str(checkout.gitdir)), commit, rel)


def user_identity(folder: Path) -> tuple[str, str]:
    """user.name / user.email from git config for `folder` (empty strings when unset)."""
    found = pygit2.discover_repository(str(folder))
    configs: list[pygit2.Config] = []
    if found is not None:
        configs.append(pygit2.Repository(found).config)
    else:  # a plain folder: the user's global settings, as `git config` would read them
        for get in (pygit2.Config.get_global_config, pygit2.Config.get_xdg_config, pygit2.Config.get_system_config):
            try:
                configs.append(get())
            except (OSError, pygit2.GitError):
                continue

    def value(key: str) -> str:
        for config in configs:
            try:
                return str(config[key])
            except KeyError:
                continue
        return ""

    return value("user.name"), value("user.email")
