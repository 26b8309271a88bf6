"""Issue 22, the live class's store: the same tests against both back ends, SQLite in a file and a real Redis
(Debian's redis-server, started here on loopback). Each checks a property any correct store has: what a call
acknowledged is there for every other store object and process, a teacher's action needs the teacher's key,
limits hold, and the export says what the store holds."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bertlab.classroom import (
    ALPHABET, ANSWER_LIMIT, CODE_LENGTH, MAX_ANSWER_CHARS, AnswerRefused, ClassError, Forbidden, NotAStudent, PollLocked,
    RateLimited, RoomClosed, RoomNotFound, StoreUnavailable, open_store,
)
from bertlab.classroom.base import anonymous_name
from bertlab.cli import main as cli
from class_fixtures import Clock, RedisServer, make_store, need_redis_server, redis_server, store, store_url  # noqa: F401

CHOICES = {"options": ["river", "finance"]}


def test_a_room_has_a_code_a_teacher_key_and_nothing_else(store):
    room, key = store.create_room("Monday, week 3")
    assert len(room.code) == CODE_LENGTH and set(room.code) <= set(ALPHABET)
    assert room.step == 0 and not room.closed and room.poll is None and room.refused == 0
    assert store.room(room.code) == room
    assert store.room(f" {room.code[:3].lower()}-{room.code[3:]} ") == room  # read forgivingly off a projector
    assert store.is_teacher(room.code, key) and not store.is_teacher(room.code, key + "x") and not store.is_teacher(room.code, None)
    other, other_key = store.create_room()
    assert other.code != room.code and other_key != key and not store.is_teacher(room.code, other_key)
    for bad in ("", "ABC", "ABCDEFG", "ABCDE1", "ABCDEI"):  # I and O are not in the alphabet (1 and 0 on a screen)
        with pytest.raises(RoomNotFound):
            store.room(bad)
    unused = next(c * CODE_LENGTH for c in ALPHABET if c * CODE_LENGTH not in (room.code, other.code))
    with pytest.raises(RoomNotFound, match="no class"):
        store.room(unused)


def test_students_join_with_or_without_a_nickname(store):
    room, _ = store.create_room()
    sam = store.join(room.code, "  Sam  ")
    sam2 = store.join(room.code, "sam")
    anon = store.join(room.code)
    assert (sam.nickname, sam2.nickname, anon.nickname) == ("Sam", "sam 2", None)  # two 'Sam's stay two in the export
    assert anon.name == anonymous_name(anon.id) and anon.id not in anon.name  # the id is the student's credential
    assert len({sam.id, sam2.id, anon.id}) == 3 and all(len(s.id) >= 16 for s in (sam, sam2, anon))
    assert store.student_count(room.code) == 3
    assert {s.id for s in store.students(room.code)} == {sam.id, sam2.id, anon.id}
    assert store.student(room.code, sam.id) == sam
    with pytest.raises(NotAStudent):
        store.student(room.code, "not-a-student")
    for bad in ("x" * 25, "Sam\x00", "a\u202eb"):
        with pytest.raises(AnswerRefused):
            store.join(room.code, bad)
    assert store.student_count(room.code) == 3


def test_teacher_actions_need_the_teacher_key_and_refusals_are_logged(store, caplog):
    room, key = store.create_room()
    student = store.join(room.code, "Eve")
    poll = store.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
    caplog.set_level(logging.WARNING, logger="bertlab.classroom")
    attempts = [
        lambda k: store.set_step(room.code, k, 3),
        lambda k: store.open_poll(room.code, k, "check", "Q?", {}),
        lambda k: store.reveal_poll(room.code, k, poll.id),
        lambda k: store.close_poll(room.code, k, poll.id),
        lambda k: store.close_room(room.code, k),
        lambda k: store.set_settings(room.code, k, {"model": "x"}),
    ]
    for attempt in attempts:
        for wrong in (None, "", student.id, key[:-1], key.upper() if key.upper() != key else key.lower()):
            with pytest.raises(Forbidden, match="attempt was logged"):
                attempt(wrong)
    after = store.room(room.code)
    assert after.refused == 5 * len(attempts)
    assert (after.step, after.closed, after.poll, after.settings) == (0, False, poll.id, room.settings)
    assert store.poll(room.code, poll.id).status == "open" and len(store.polls(room.code)) == 1
    refusals = [r for r in caplog.records if r.name == "bertlab.classroom" and "refused" in r.getMessage()]
    assert len(refusals) == 5 * len(attempts) and room.code in refusals[0].getMessage()
    assert key not in caplog.text  # the key is never logged


def test_a_poll_opens_locks_at_reveal_and_closes(store):
    room, key = store.create_room()
    a, b = store.join(room.code, "A"), store.join(room.code, "B")
    first = store.open_poll(room.code, key, "sense", "Which sense of bank?", CHOICES)
    assert store.room(room.code).poll == first.id and store.current_poll(room.code) == first
    store.answer(room.code, a.id, first.id, "river")
    store.answer(room.code, a.id, first.id, "finance")  # a student may change their mind until the reveal
    store.answer(room.code, b.id, first.id, "finance")
    assert store.answer_of(room.code, first.id, a.id).answer == "finance"
    assert store.answer_count(room.code, first.id) == 2 and store.histogram(room.code, first.id) == {"finance": 2}
    revealed = store.reveal_poll(room.code, key, first.id, {"note": "what the model said"})
    assert revealed.status == "revealed" and revealed.result == {"note": "what the model said"}
    with pytest.raises(PollLocked):
        store.answer(room.code, b.id, first.id, "river")
    assert store.histogram(room.code, first.id) == {"finance": 2}
    second = store.open_poll(room.code, key, "fill", "Fill the blank: a [MASK]", {"sentence": "a [MASK]"})
    third = store.open_poll(room.code, key, "fill", "Fill the blank: the [MASK]", {"sentence": "the [MASK]"})
    assert [p.id for p in store.polls(room.code)] == [first.id, second.id, third.id] and len({first.id, second.id, third.id}) == 3
    assert store.poll(room.code, second.id).status == "closed"  # opening a poll locks the one open before it
    assert store.poll(room.code, first.id).status == "revealed"
    with pytest.raises(PollLocked):
        store.answer(room.code, a.id, second.id, "dog")
    store.answer(room.code, a.id, third.id, "Dog")
    store.answer(room.code, b.id, third.id, " dog ")
    assert store.histogram(room.code, third.id) == {"dog": 2}  # typed answers are counted case-insensitively
    store.close_poll(room.code, key, third.id)
    assert store.room(room.code).poll is None and store.current_poll(room.code) is None
    with pytest.raises(ClassError):
        store.reveal_poll(room.code, key, 99)


def test_answers_are_checked_before_they_are_stored(store):
    room, key = store.create_room()
    s = store.join(room.code)
    choice = store.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
    for bad in ("", "   ", "money", "<b>river</b>", "river\x07"):
        with pytest.raises(AnswerRefused):
            store.answer(room.code, s.id, choice.id, bad)
    typed = store.open_poll(room.code, key, "fill", "Fill", {"sentence": "a [MASK]"})
    with pytest.raises(AnswerRefused, match=f"at most {MAX_ANSWER_CHARS}"):
        store.answer(room.code, s.id, typed.id, "x" * (MAX_ANSWER_CHARS + 1))
    stored = store.answer(room.code, s.id, typed.id, "<script>alert(1)</script>")  # stored as typed; pages escape it
    assert store.answer_of(room.code, typed.id, s.id).answer == stored.answer == "<script>alert(1)</script>"
    with pytest.raises(NotAStudent):
        store.answer(room.code, "someone-else", typed.id, "dog")
    with pytest.raises(ClassError):
        store.answer(room.code, s.id, 99, "dog")
    assert store.answer_count(room.code, typed.id) == 1 and store.answer_count(room.code, choice.id) == 0


def test_a_burst_from_one_student_is_limited_and_nobody_else_waits_for_it(store):
    room, key = store.create_room()
    poll = store.open_poll(room.code, key, "fill", "Fill the blank: a [MASK]", {"sentence": "a [MASK]"})
    flood = store.join(room.code, "flood")
    others = [store.join(room.code, f"s{i}") for i in range(20)]
    outcomes: Counter = Counter()
    started = threading.Event()

    def burst() -> None:
        for i in range(1000):
            started.set()
            try:
                store.answer(room.code, flood.id, poll.id, f"guess {i}")
                outcomes["stored"] += 1
            except RateLimited:
                outcomes["limited"] += 1

    with ThreadPoolExecutor(8) as pool:
        flooding = pool.submit(burst)
        started.wait(10)
        stored = list(pool.map(lambda s: store.answer(room.code, s.id, poll.id, "dog"), others))  # while the burst runs
        flooding.result()
    assert outcomes == {"stored": ANSWER_LIMIT, "limited": 1000 - ANSWER_LIMIT}
    assert len(stored) == 20  # every other student's answer was taken, during the burst
    assert store.histogram(room.code, poll.id)["dog"] == 20 and store.answer_count(room.code, poll.id) == 21


def test_the_rate_window_passes(make_store):
    clock = Clock()
    store = make_store(clock)
    room, key = store.create_room()
    poll = store.open_poll(room.code, key, "fill", "Fill", {"sentence": "a [MASK]"})
    s = store.join(room.code)
    for i in range(ANSWER_LIMIT):
        store.answer(room.code, s.id, poll.id, f"w{i}")
    with pytest.raises(RateLimited):
        store.answer(room.code, s.id, poll.id, "again")
    clock.advance(10.5)
    assert store.answer(room.code, s.id, poll.id, "again").answer == "again"


def test_a_refused_answer_takes_no_write_lock_sqlite(tmp_path, monkeypatch):
    """SQLite has one writer at a time: a student over the limit is refused on a read, so a burst does not queue
    the rest of the room behind its write transactions."""
    store = open_store(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    room, key = store.create_room()
    poll = store.open_poll(room.code, key, "fill", "Fill", {"sentence": "a [MASK]"})
    s = store.join(room.code)
    writes = []
    real = store._write
    monkeypatch.setattr(store, "_write", lambda: writes.append(1) or real())
    for i in range(200):
        try:
            store.answer(room.code, s.id, poll.id, f"w{i}")
        except RateLimited:
            pass
    assert len(writes) == ANSWER_LIMIT


def test_rooms_expire(make_store):
    clock = Clock()
    store = make_store(clock)
    room, key = store.create_room(ttl_s=3600)
    s = store.join(room.code)
    clock.advance(3599)
    assert store.room(room.code).code == room.code
    clock.advance(2)
    for call in (lambda: store.room(room.code), lambda: store.join(room.code), lambda: store.student(room.code, s.id),
                 lambda: store.set_step(room.code, key, 1), lambda: store.export(room.code)):
        with pytest.raises(RoomNotFound):
            call()


ANSWER_THEN_DIE = """
import json, os, signal, sys
from bertlab.classroom import open_store
s = open_store(sys.argv[1])
code, poll = sys.argv[2], int(sys.argv[3])
room = s.room(code)
ids = []
for i in range(5):
    st = s.join(code, f"from another process {i}")
    s.answer(code, st.id, poll, "river")
    ids.append(st.id)
print(json.dumps({"step": room.step, "poll": room.poll, "acknowledged": ids}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)   # no shutdown: nothing is flushed on the way out
"""


def test_another_process_shares_the_class_and_what_it_acknowledged_survives_its_death(make_store, store_url):
    """No class state is kept in a process: a second process (a restarted server, another replica) sees the
    teacher's step and poll, and the answers it acknowledged are there after it is killed (SIGKILL)."""
    teacher_side = make_store()
    room, key = teacher_side.create_room("shared")
    poll = teacher_side.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
    teacher_side.set_step(room.code, key, 4)
    out = subprocess.run([sys.executable, "-c", ANSWER_THEN_DIE, store_url, room.code, str(poll.id)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    seen = json.loads(out.stdout)
    assert (seen["step"], seen["poll"]) == (4, poll.id)
    fresh = make_store()
    assert {a.student for a in fresh.answers(room.code, poll.id)} == set(seen["acknowledged"])
    assert fresh.student(room.code, seen["acknowledged"][0]).nickname == "from another process 0"
    assert teacher_side.histogram(room.code, poll.id) == {"river": 5}


def test_redis_keeps_what_it_acknowledged_when_the_redis_server_is_killed(tmp_path):
    """With appendonly and appendfsync always (README's setting for a class), a killed redis-server loses nothing."""
    need_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = open_store(server.url)
        room, key = store.create_room()
        poll = store.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
        ids = [store.join(room.code).id for _ in range(3)]
        for sid in ids:
            store.answer(room.code, sid, poll.id, "finance")
        server.kill()
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            store.room(room.code)
        server.start()
        assert store.histogram(room.code, poll.id) == {"finance": 3}
        assert {s.id for s in store.students(room.code)} == set(ids)
    finally:
        server.stop()


def test_an_unreachable_store_is_said_plainly():
    from labtools.server import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.create_room()
    with pytest.raises(ClassError, match="must start with"):
        open_store("postgres://somewhere")


def test_ending_the_class_keeps_it_readable(store):
    room, key = store.create_room()
    s = store.join(room.code)
    poll = store.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
    store.answer(room.code, s.id, poll.id, "river")
    store.close_room(room.code, key)
    with pytest.raises(RoomClosed):
        store.join(room.code)
    with pytest.raises(RoomClosed):
        store.answer(room.code, s.id, poll.id, "finance")
    with pytest.raises(RoomClosed):
        store.open_poll(room.code, key, "check", "Q?", {})
    assert store.room(room.code).closed and store.export(room.code)["polls"][0]["histogram"] == {"river": 1}


def test_export_json_and_csv_say_what_the_store_holds(store, store_url, monkeypatch, capsys):
    room, key = store.create_room()
    named, anon = store.join(room.code, "=cmd|' /C calc'!A0"), store.join(room.code)
    first = store.open_poll(room.code, key, "sense", "Which sense?", CHOICES)
    store.answer(room.code, named.id, first.id, "river")
    store.answer(room.code, anon.id, first.id, "finance")
    second = store.open_poll(room.code, key, "fill", "Fill the blank: a [MASK]", {"sentence": "a [MASK]"})
    store.answer(room.code, named.id, second.id, "Dog")
    store.answer(room.code, anon.id, second.id, "dog")
    third = store.open_poll(room.code, key, "check", "How many tokens?", {"answer_kind": "number", "correct": ["7"]})

    monkeypatch.delenv("BERTLAB_CLASS_DB", raising=False)
    monkeypatch.setenv("BERTLAB_CLASS_STORE", store_url)  # the command reads the store the environment names
    assert cli(["class", "export", room.code.lower(), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["code", "students", "polls"] and data["code"] == room.code and data["students"] == 2
    assert [p["id"] for p in data["polls"]] == [first.id, second.id, third.id]
    for poll in data["polls"]:
        assert list(poll) == ["id", "kind", "prompt", "answers", "histogram"]
        stored = store.answers(room.code, poll["id"])
        assert len(poll["answers"]) == len(stored)
        for answer in poll["answers"]:
            assert list(answer) == ["student", "answer", "at"] and answer["at"].endswith("Z")
        assert poll["histogram"] == dict(Counter(a.answer.casefold() if poll["kind"] == "fill" else a.answer for a in stored))
    assert {a["student"] for a in data["polls"][0]["answers"]} == {named.nickname, anon.name}
    assert data["polls"][1]["histogram"] == {"dog": 2} and data["polls"][2]["answers"] == []

    assert cli(["class", "export", room.code, "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "poll,kind,student,answer,at" and len(lines) == 1 + 4
    assert any(line.split(",")[2].startswith("\"'=cmd") or "'=cmd" in line for line in lines)  # not a formula in a spreadsheet
    assert cli(["class", "export", room.code, "--csv", "--poll", str(second.id)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 2
    assert cli(["class", "export", "QQQQQQ", "--json"]) == 2
    assert "no class QQQQQQ" in capsys.readouterr().err


def test_the_default_store_is_a_sqlite_file_created_on_first_use(tmp_path, monkeypatch):
    from bertlab.classroom import store_url as url_of

    monkeypatch.delenv("BERTLAB_CLASS_STORE", raising=False)
    monkeypatch.delenv("BERTLAB_CLASS_DB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert url_of().startswith("sqlite:///") and "bertlab" in url_of()
    path = tmp_path / "deep" / "folder" / "class.sqlite3"
    monkeypatch.setenv("BERTLAB_CLASS_DB", str(path))
    assert url_of() == f"sqlite:///{path}"
    store = open_store()
    assert path.exists() and store.describe() == f"SQLite at {path}"
    import sqlite3

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
