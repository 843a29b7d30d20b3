"""Participants and links as people meet them in the browser (issue 18): removing one
person who came with the shared link, an invite that knows its name, a frozen server
seen in every tab, names on other people's cursors, where people are, and a tab given the
next session's link."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from ..support import RTC, RtcProcess, get_json
from .conftest import expect, join, run_async, wait_for
from .helpers import README

pytestmark = pytest.mark.browser

TOOL = "def f():\n    return 1\n"


def rtc(session, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RTC, *args], cwd=session.repo, capture_output=True, text=True, timeout=60)


def test_the_owner_removes_one_person_who_joined_with_the_edit_link(start_session, people):
    session = start_session({"README.md": README})
    bob = join(people.page(), session.url_for("README.md"), "Bob")
    carol = join(people.page(), session.url_for("README.md"), "Carol")
    expect(carol.locator(".people .person[data-name='Bob']")).to_have_count(1)

    done = rtc(session, "kick", "Bob")
    assert done.returncode == 0, done.stderr

    expect(bob.locator(".banner")).to_contain_text("removed by the session owner")
    expect(bob.locator("body")).to_have_attribute("data-conn", "closed")
    expect(bob.locator(".conn")).not_to_contain_text("Connected")
    wait_for(
        bob,
        lambda: not any(c["connected"] or c["reconnecting"] for c in bob.evaluate("window.gitrtc.connections()")),
        "every socket of Bob's page closed for good",
    )
    # Carol, who came with the same link, stays, and Bob is gone from her People
    expect(carol.locator(".people .person[data-name='Bob']")).to_have_count(0)
    expect(carol.locator("body")).to_have_attribute("data-conn", "online")
    assert bob.errors == [] and carol.errors == []
    bob.reload()  # the edit link does not bring him back under his name
    expect(bob.locator(".fatal")).to_contain_text("removed by the session owner")


def test_an_invite_link_opens_with_the_invited_name(start_session, people):
    session = start_session({"README.md": README})
    done = rtc(session, "invite", "Ada Lovelace")
    assert done.returncode == 0, done.stderr
    url = next(word for word in done.stdout.split() if "#t=" in word)
    page = people.page()
    page.goto(url)
    expect(page.locator("#id-name")).to_have_value("Ada Lovelace")
    page.click(".identity-form button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-conn", "online")
    expect(page.locator(".people .person[data-name='Ada Lovelace']")).to_have_count(1)


def test_a_frozen_server_shows_offline_in_every_tab(start_session, people):
    session = start_session({"README.md": README})
    first = join(people.page(), session.url_for("README.md"), "Ada")
    second = join(people.page(), session.url, "Bob")
    pid = session.rtc.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for page in (first, second):
            expect(page.locator(".conn")).to_contain_text("Offline — reconnecting", timeout=20_000)
            expect(page.locator("body")).to_have_attribute("data-conn", "offline")
    finally:
        os.kill(pid, signal.SIGCONT)
    for page in (first, second):
        expect(page.locator("body")).to_have_attribute("data-conn", "online", timeout=30_000)
        expect(page.locator(".conn")).to_have_text("Connected")


def test_names_show_on_other_peoples_cursors(start_session, people):
    session = start_session({"README.md": README})
    ada = join(people.page(), session.url_for("README.md"), "Ada")
    bob = join(people.page(), session.url_for("README.md"), "Bob")
    bob.click(".doc-text .cm-content")
    bob.keyboard.press("Control+End")
    bob.keyboard.type("x")
    flag = ada.locator(".doc-text .cm-ySelectionInfo", has_text="Bob")
    expect(flag).to_have_count(1)
    ada.mouse.move(0, 0)  # not hovering: the name still shows
    expect(flag).to_be_visible()
    wait_for(ada, lambda: flag.evaluate("e => getComputedStyle(e).opacity") == "1", "the flag fully shown")


def test_where_people_are_is_the_file_open_now(start_session, people):
    session = start_session({"README.md": README, "src/tool.py": TOOL})
    ada = join(people.page(), session.url_for("README.md"), "Ada")
    bob = join(people.page(), session.url_for("README.md"), "Bob")
    ada.click("a.file[data-path='src/tool.py']")
    expect(ada.locator(".doc[data-path='src/tool.py']")).to_have_attribute("data-ready", "true")
    expect(bob.locator(".people .person[data-name='Ada'] .person-file")).to_have_text("tool.py")

    def ada_files():
        status, body = run_async(get_json(f"{session.rtc.base}/api/status", session.info["owner_token"]))
        assert status == 200, body
        return next((p["files"] for p in body["participants"] if p["name"] == "Ada"), None)

    # her README room stays connected in the page, but she is in src/tool.py only
    wait_for(ada, lambda: ada_files() == ["src/tool.py"], "rtc status: Ada in src/tool.py only")
    done = rtc(session, "status", "--json")
    assert done.returncode == 0, done.stderr
    assert '"README.md"' not in done.stdout.split('"participants"')[1].split("]", 1)[0]


def test_an_ended_tab_given_the_next_sessions_link_loads_it(start_session, people):
    session = start_session({"README.md": README})
    page = join(people.page(), session.url_for("README.md"), "Ada")
    port = session.info["port"]
    done = session.rtc.stop("-m", "First session")
    assert done.returncode == 0, done.stderr
    expect(page.locator("body")).to_have_attribute("data-session", "ended")

    second = RtcProcess(session.repo, ["--port", str(port), "README.md"])
    try:
        info = second.wait_ready()
        assert info["token"] != session.info["token"]
        page.goto(f"{info['url']}&f=README.md")  # the new link pasted into the same tab
        expect(page.locator("body")).to_have_attribute("data-session", "live")
        expect(page.locator("body")).to_have_attribute("data-conn", "online")
        expect(page.locator(".doc:not([hidden])")).to_have_attribute("data-ready", "true")
    finally:
        second.kill()


def test_rtc_join_participants_are_listed_in_people(start_session, people, tmp_path):
    session = start_session({"README.md": README})
    page = join(people.page(), session.url_for("README.md"), "Ada")
    folder = tmp_path / "mirror"
    folder.mkdir()
    mirror = subprocess.Popen(
        [*RTC, "join", session.url, str(folder), "--name", "Terminal Tom"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        tom = page.locator(".people .person[data-name='Terminal Tom']")
        expect(tom).to_have_count(1)
        expect(tom.locator(".person-role")).to_have_text("rtc join")
    finally:
        mirror.kill()
        mirror.communicate(timeout=10)
