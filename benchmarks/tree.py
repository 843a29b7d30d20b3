"""`rtc start` on a large folder (#19): time to serving, idle CPU and RSS, against `git status`.

    python benchmarks/tree.py 1000 10000 [100000]

For each size: a repository of N small text files (100 per folder, committed), then
- `git status` wall time on it (warm cache: dropping the page cache needs root);
- `rtc start --no-open` (the whole work tree shared) until `.git/rtc/session.json` is
  written (serving), the ratio to `git status`;
- idle CPU (user+system seconds per wall second over `--idle` seconds, nothing changing)
  and RSS of the `rtc start` process;
- a file created on disk: seconds until `GET /api/tree?find=` lists it (the live file set);
- the first opening of a file nobody opened (`GET /api/original/ROOM`: a large tree's
  start does not read files, their first opening does);
- CPU seconds (user+system) of the start until serving and of `git status`: a ratio that
  survives a loaded machine better than wall times.
Then `rtc stop --no-commit`. Prints one line per size and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RTC = [sys.executable, "-m", "gitrtc"]
TICKS = os.sysconf("SC_CLK_TCK")


def make_tree(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.org"), ("commit.gpgsign", "false")):
        subprocess.run(["git", "config", key, value], cwd=root, check=True)
    for i in range(n):
        folder = root / f"d{i // 10000:02d}" / f"s{(i // 100) % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.md").write_text(f"# File {i}\n\nSome text in file {i}.\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "tree"], cwd=root, check=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def get(port: int, token: str, url: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{url}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def found(port: int, token: str, path: str) -> dict[str, str] | None:
    return next((f for f in json.loads(get(port, token, f"/api/tree?find={path}"))["files"] if f["path"] == path), None)


def children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def measure(n: int, idle: float, work: Path) -> dict[str, float]:
    repo = work / f"tree{n}"
    make_tree(repo, n)
    cpu0, started = children_cpu(), time.perf_counter()
    subprocess.run(["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True)
    git_status = time.perf_counter() - started
    git_status_cpu = children_cpu() - cpu0

    session_file = repo / ".git" / "rtc" / "session.json"
    started = time.perf_counter()
    proc = subprocess.Popen([*RTC, "start", "--no-open", "--port", "0"], cwd=repo, stdout=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"rtc start exited {proc.returncode}")
            try:
                info = json.loads(session_file.read_text())
                if info.get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        serving = time.perf_counter() - started
        start_cpu = cpu_seconds(proc.pid)
        time.sleep(2.0)  # let the start settle (preloads, the watcher's setup)
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(idle)
        idle_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
        rss = rss_mib(proc.pid)
        new = "d00/s00/new-file.md"
        (repo / new).write_text("new\n")
        t0 = time.perf_counter()
        while found(info["port"], info["token"], new) is None:
            if time.perf_counter() - t0 > 30:
                raise SystemExit("the new file was not listed within 30 s")
            time.sleep(0.02)
        live = time.perf_counter() - t0
        last = f"d{(n - 1) // 10000:02d}/s{((n - 1) // 100) % 100:02d}/f{n - 1:06d}.md"  # never preloaded
        entry = found(info["port"], info["token"], last)
        assert entry is not None, last
        t0 = time.perf_counter()
        get(info["port"], info["token"], f"/api/original/{entry['room']}")
        first_open = time.perf_counter() - t0
    finally:
        subprocess.run([*RTC, "stop", "--no-commit"], cwd=repo, capture_output=True)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(repo, ignore_errors=True)
    return {
        "files": n,
        "git_status_s": round(git_status, 3),
        "serving_s": round(serving, 3),
        "ratio": round(serving / git_status, 1),
        "git_status_cpu_s": round(git_status_cpu, 2),
        "start_cpu_s": round(start_cpu, 2),
        "cpu_ratio": round(start_cpu / max(git_status_cpu, 0.01), 1),
        "first_open_s": round(first_open, 3),
        "idle_cpu_pct": round(idle_cpu * 100, 2),
        "rss_mib": round(rss, 1),
        "new_file_listed_s": round(live, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU sampling")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rtc-tree-") as tmp:
        for n in args.sizes:
            r = measure(n, args.idle, Path(tmp))
            results.append(r)
            print(
                f"{n:>7} files: serving {r['serving_s']:.2f} s (git status {r['git_status_s']:.3f} s, "
                f"x{r['ratio']}), idle CPU {r['idle_cpu_pct']:.2f}%, RSS {r['rss_mib']:.0f} MiB, "
                f"a new file listed in {r['new_file_listed_s']:.2f} s, first opening {r['first_open_s']:.2f} s, "
                f"CPU {r['start_cpu_s']:.2f} s (git status {r['git_status_cpu_s']:.2f} s, x{r['cpu_ratio']})",
                flush=True,
            )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
