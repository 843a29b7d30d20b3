"""Installing plugins for a test the way pip would, as far as `importlib.metadata` sees:
a `.dist-info` folder with `entry_points.txt` on the path of an `rtc` subprocess.

The example's entry points are read from its own `pyproject.toml`, so the test goes
through exactly what `pip install examples/gitrtc-csv` declares.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gitrtc-csv"
HERE = Path(__file__).resolve().parent


def dist_info(site: Path, name: str, version: str, groups: dict[str, dict[str, str]]) -> None:
    """A minimal installed distribution `name` with these entry points."""
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in entries.items())
        lines.append("")
    (folder / "entry_points.txt").write_text("\n".join(lines))


def install_example(site: Path) -> None:
    """The gitrtc-csv example, as its pyproject declares it."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist_info(site, project["name"], project["version"], project["entry-points"])


def install_bad(site: Path) -> None:
    """The misbehaving plugins of `bad_plugins.py` and `bad_import.py`."""
    kinds = {
        n: f"tests.plugins.bad_plugins:{c}"
        for n, c in [
            ("raises", "Raises"),
            ("hangs", "Hangs"),
            ("invalid", "Invalid"),
            ("lossy", "Lossy"),
            ("stalls", "Stalls"),
            ("notakind", "NotAKind"),
        ]
    }
    kinds["broken"] = "tests.plugins.bad_import:Kind"
    dist_info(
        site,
        "rtc-bad-plugins",
        "0.0.1",
        {
            "gitrtc.documents": kinds,
            "gitrtc.services": {"flood": "tests.plugins.bad_plugins:Flood"},
        },
    )


def env(site: Path) -> dict[str, str]:
    """The environment of an `rtc` subprocess that sees the plugins of `site`."""
    paths = [str(ROOT), str(site), str(EXAMPLE)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(paths)}


def install_hello(site: Path) -> None:
    """A service with a browser panel for every file (`hello.py`, `static/panel.js`)."""
    dist_info(site, "rtc-hello", "0.0.1", {"gitrtc.services": {"hello": "tests.plugins.hello:Hello"}})
