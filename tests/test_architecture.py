"""The shape of the code: which packages may import which, and the one error table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gitrtc import errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gitrtc"


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every `gitrtc…` module `path` imports (absolute, relative, top-level or in a function)."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if path.name == "__init__.py":
        package = module.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "gitrtc" or name.startswith("gitrtc.")}


def modules_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_core_imports_nothing_from_the_cli() -> None:
    """The UI depends on the core, never the other way: everything outside gitrtc/cli/
    (except the `python -m gitrtc` entry point) must not import gitrtc.cli."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in imported_modules(path) if n == "gitrtc.cli" or n.startswith("gitrtc.cli.")
        )
        for path in modules_under(PACKAGE)
        if "cli" not in path.relative_to(PACKAGE).parts[:1] and path.name != "__main__.py"
    }
    assert {p: names for p, names in offenders.items() if names} == {}


def test_documents_do_not_import_merge() -> None:
    """One direction only: merge/ (whole-file three-way merges) may use the documents;
    the documents (layouts, codecs, diff-to-operations) never import merge/."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imported_modules(path) if n.startswith("gitrtc.merge"))
        for path in modules_under(PACKAGE / "documents")
    }
    assert {p: names for p, names in offenders.items() if names} == {}


def test_the_import_scanner_sees_relative_and_local_imports(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the scanner missed an import form."""
    probe = tmp_path / "gitrtc" / "documents" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..merge import files\nimport gitrtc.cli.main\n\ndef f():\n    from ..cli import panel\n")
    assert {
        "gitrtc.merge",
        "gitrtc.merge.files",
        "gitrtc.cli",
        "gitrtc.cli.panel",
        "gitrtc.cli.main",
    } <= imported_modules(probe, tmp_path)


def test_every_error_answers_from_the_one_table() -> None:
    """Each error class carries an HTTP status and a close code, and the code is one of
    the named ones the browser knows."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.RtcError)]
    assert len(classes) > 10
    for cls in classes:
        assert 400 <= cls.http_status < 600, cls
        assert cls.close_code in errors.CLOSE_CODES.values(), cls


def test_the_typescript_close_codes_are_generated_from_errors_py() -> None:
    """web/src/closecodes.ts is what scripts/gen_closecodes.py writes today (run it after
    changing the table in gitrtc/errors.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_closecodes", ROOT / "scripts" / "gen_closecodes.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "web" / "src" / "closecodes.ts").read_text() == gen.render()


@pytest.mark.parametrize("name", ["app.ts", "connection.ts", "main.ts", "views.ts"])
def test_the_browser_client_uses_the_table_not_bare_codes(name: str) -> None:
    import re

    source = (ROOT / "web" / "src" / name).read_text()
    bare = re.findall(r"(?:code|status)\s*===?\s*\d{3,4}\b", source)
    assert bare == []
