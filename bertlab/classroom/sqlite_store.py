"""The default class store: SQLite in one file, in WAL mode (readers never wait for the writer).

Every write is one transaction, committed with `synchronous=FULL` before the call returns, so an answer a
student was told is saved survives the server being killed. Writers take the lock with BEGIN IMMEDIATE and
re-check the room, the poll and the student's rate inside it; an answer refused for its rate is refused on
a read, without taking the write lock, so one student's burst does not queue everyone else's answers.

Connections are pooled per store (a sqlite3 connection may serve any thread, one at a time); Streamlit runs
each script run in its own thread, so a connection per thread would be a new connection per run.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .base import MAX_NICKNAME_CHARS, Answer, ClassStore, Poll, Room, StoreUnavailable, Student

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY, title TEXT NOT NULL, secret_hash TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, step INTEGER NOT NULL DEFAULT 0, closed INTEGER NOT NULL DEFAULT 0,
    poll INTEGER, refused INTEGER NOT NULL DEFAULT 0, next_poll INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS rooms_expires ON rooms (expires);
CREATE TABLE IF NOT EXISTS students (
    code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE, id TEXT NOT NULL, nickname TEXT,
    joined REAL NOT NULL, window_start REAL NOT NULL DEFAULT 0, window_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (code, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS students_nickname ON students (code, nickname COLLATE NOCASE) WHERE nickname IS NOT NULL;
CREATE TABLE IF NOT EXISTS polls (
    code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE, id INTEGER NOT NULL, kind TEXT NOT NULL,
    prompt TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL, opened REAL NOT NULL, result TEXT,
    PRIMARY KEY (code, id)
);
CREATE TABLE IF NOT EXISTS answers (
    code TEXT NOT NULL, poll INTEGER NOT NULL, student TEXT NOT NULL, answer TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (code, poll, student),
    FOREIGN KEY (code, poll) REFERENCES polls (code, id) ON DELETE CASCADE
);
"""
BUSY_TIMEOUT_MS = 10_000
POOL = 16


class SqliteStore(ClassStore):
    """The class store in a SQLite file (created with its folder on first use)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.path = Path(path).expanduser()
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailable(f"The class store {self.path} cannot be opened: {err}.") from err

    def describe(self) -> str:
        return f"SQLite at {self.path}"

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # --- connections --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the call returns
        db.execute("PRAGMA foreign_keys=ON")
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._pool.get_nowait()
        except queue.Empty:
            db = self._connect()
        try:
            yield db
        except sqlite3.OperationalError as err:
            db.close()
            raise StoreUnavailable(f"The class store {self.path} cannot be used right now: {err}.") from err
        else:
            if self._pool.qsize() < POOL:
                self._pool.put(db)
            else:
                db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (on disk) when the block ends, rolled back if it raises."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, *args) -> list[sqlite3.Row]:
        with self._connection() as db:
            return db.execute(sql, args).fetchall()

    # --- rooms --------------------------------------------------------------------------------------

    def _insert_room(self, room: Room, secret_hash: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM rooms WHERE expires <= ?", (room.created,))  # expired rooms go, with everything in them
            try:
                db.execute(
                    "INSERT INTO rooms (code, title, secret_hash, created, expires, settings) VALUES (?, ?, ?, ?, ?, ?)",
                    (room.code, room.title, secret_hash, room.created, room.expires, json.dumps(room.settings)),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def _get_room(self, code: str) -> tuple[Room, str] | None:
        rows = self._read("SELECT * FROM rooms WHERE code = ?", code)
        if not rows:
            return None
        r = rows[0]
        room = Room(r["code"], r["title"], r["created"], r["expires"], r["step"], bool(r["closed"]), r["poll"],
                    r["refused"], json.loads(r["settings"]))
        return room, r["secret_hash"]

    def _update_room(self, code: str, **fields) -> None:
        columns = {"step": int, "closed": int, "settings": json.dumps}
        sets = {name: columns[name](value) for name, value in fields.items()}
        with self._write() as db:
            db.execute(f"UPDATE rooms SET {', '.join(f'{n} = ?' for n in sets)} WHERE code = ?", (*sets.values(), code))

    def _add_refusal(self, code: str) -> None:
        with self._write() as db:
            db.execute("UPDATE rooms SET refused = refused + 1 WHERE code = ?", (code,))

    # --- students -----------------------------------------------------------------------------------

    def _join(self, code: str, student: Student, max_students: int) -> Student | str:
        with self._write() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM students WHERE code = ?", (code,)).fetchone()
            if count >= max_students:
                return "full"
            nickname = student.nickname
            if nickname is not None:
                taken = {r[0].casefold() for r in db.execute("SELECT nickname FROM students WHERE code = ? AND nickname IS NOT NULL", (code,))}
                nickname = next(n for n in _nicknames(nickname) if n.casefold() not in taken)
            db.execute("INSERT INTO students (code, id, nickname, joined) VALUES (?, ?, ?, ?)", (code, student.id, nickname, student.joined))
        return Student(student.id, nickname, student.joined)

    def _get_student(self, code: str, student_id: str) -> Student | None:
        rows = self._read("SELECT id, nickname, joined FROM students WHERE code = ? AND id = ?", code, student_id)
        return Student(*rows[0]) if rows else None

    def _students(self, code: str) -> list[Student]:
        return [Student(*r) for r in self._read("SELECT id, nickname, joined FROM students WHERE code = ?", code)]

    def _student_count(self, code: str) -> int:
        return self._read("SELECT COUNT(*) FROM students WHERE code = ?", code)[0][0]

    # --- polls --------------------------------------------------------------------------------------

    def _open_poll(self, code: str, kind: str, prompt: str, spec: dict, at: float) -> int:
        with self._write() as db:
            (poll_id,) = db.execute("UPDATE rooms SET next_poll = next_poll + 1 WHERE code = ? RETURNING next_poll", (code,)).fetchone()
            db.execute("UPDATE polls SET status = 'closed' WHERE code = ? AND status = 'open'", (code,))
            db.execute("INSERT INTO polls (code, id, kind, prompt, spec, status, opened) VALUES (?, ?, ?, ?, ?, 'open', ?)",
                       (code, poll_id, kind, prompt, json.dumps(spec), at))
            db.execute("UPDATE rooms SET poll = ? WHERE code = ?", (poll_id, code))
        return poll_id

    def _set_poll_status(self, code: str, poll_id: int, status: str, allowed_from: tuple[str, ...], result: dict | None) -> str | None:
        with self._write() as db:
            row = db.execute("SELECT status FROM polls WHERE code = ? AND id = ?", (code, poll_id)).fetchone()
            if row is None:
                return None
            if row[0] in allowed_from:
                db.execute("UPDATE polls SET status = ?, result = COALESCE(?, result) WHERE code = ? AND id = ?",
                           (status, None if result is None else json.dumps(result), code, poll_id))
                if status == "closed":
                    db.execute("UPDATE rooms SET poll = NULL WHERE code = ? AND poll = ?", (code, poll_id))
            return row[0]

    @staticmethod
    def _poll(r: sqlite3.Row) -> Poll:
        return Poll(r["id"], r["kind"], r["prompt"], json.loads(r["spec"]), r["status"], r["opened"],
                    None if r["result"] is None else json.loads(r["result"]))

    def _get_poll(self, code: str, poll_id: int) -> Poll | None:
        rows = self._read("SELECT * FROM polls WHERE code = ? AND id = ?", code, poll_id)
        return self._poll(rows[0]) if rows else None

    def _polls(self, code: str) -> list[Poll]:
        return [self._poll(r) for r in self._read("SELECT * FROM polls WHERE code = ?", code)]

    # --- answers ------------------------------------------------------------------------------------

    def _put_answer(self, code: str, student_id: str, poll_id: int, answer: str, at: float, limit: int, window_s: float) -> str:
        # first a read: a student over the limit is refused without taking the write lock
        rows = self._read("SELECT window_start, window_count FROM students WHERE code = ? AND id = ?", code, student_id)
        if not rows:
            return "student"
        if at - rows[0][0] < window_s and rows[0][1] >= limit:
            return "rate"
        with self._write() as db:
            room = db.execute("SELECT closed FROM rooms WHERE code = ?", (code,)).fetchone()
            if room is None:
                return "room"
            if room[0]:
                return "closed"
            poll = db.execute("SELECT status FROM polls WHERE code = ? AND id = ?", (code, poll_id)).fetchone()
            if poll is None:
                return "poll"
            if poll[0] != "open":
                return "locked"
            start, count = db.execute("SELECT window_start, window_count FROM students WHERE code = ? AND id = ?", (code, student_id)).fetchone()
            if at - start >= window_s:
                start, count = at, 0
            if count >= limit:
                return "rate"
            db.execute("UPDATE students SET window_start = ?, window_count = ? WHERE code = ? AND id = ?", (start, count + 1, code, student_id))
            db.execute(
                "INSERT INTO answers (code, poll, student, answer, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (code, poll, student) DO UPDATE SET answer = excluded.answer, at = excluded.at",
                (code, poll_id, student_id, answer, at),
            )
        return "ok"

    def _answers(self, code: str, poll_id: int) -> list[Answer]:
        return [Answer(*r) for r in self._read("SELECT poll, student, answer, at FROM answers WHERE code = ? AND poll = ?", code, poll_id)]

    def _answer_of(self, code: str, poll_id: int, student_id: str) -> Answer | None:
        rows = self._read("SELECT poll, student, answer, at FROM answers WHERE code = ? AND poll = ? AND student = ?", code, poll_id, student_id)
        return Answer(*rows[0]) if rows else None

    def _answer_count(self, code: str, poll_id: int) -> int:
        return self._read("SELECT COUNT(*) FROM answers WHERE code = ? AND poll = ?", code, poll_id)[0][0]


def _nicknames(nickname: str) -> Iterator[str]:
    """'Sam', then 'Sam 2', 'Sam 3', ...: two students who both chose 'Sam' stay two in the export."""
    yield nickname
    n = 2
    while True:
        yield f"{nickname[: MAX_NICKNAME_CHARS - len(str(n)) - 1]} {n}"
        n += 1
