"""The class store's one interface: rooms, students, polls and answers, and the rules every back end keeps.

A back end (SQLite in a file, or Redis) keeps nothing about a class in the process: every call reads or writes
the store, and every write is committed before the call returns. So a page served by any process (a restarted
server, or one of several Streamlit replicas sharing Redis) sees the same class, and what a student was told
was saved is saved.

This module holds what is the same for every back end: the data types, the limits, the checks made before a
write (length, control characters, the poll's options, the teacher's key) and the export. A back end provides
the few primitives below that must be atomic in its own database (`_insert_room`, `_join`, `_open_poll`,
`_set_poll_status`, `_put_answer`, ...).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import time
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from ..errors import BertlabError, InputError

log = logging.getLogger("bertlab.classroom")

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Room code letters: no I or O, which read as 1 and 0 off a projector. 24**6 = 191 million codes."""
CODE_LENGTH = 6
POLL_KINDS = {
    "fill": "Fill the blank",
    "sense": "Which sense?",
    "head": "Which token does this head look at?",
    "mask": "Where does the mask block?",
    "check": "Check for this step",
}
"""Poll kinds and their names on screen."""
FREE_TEXT = ("fill",)
"""Kinds whose answers are typed (grouped case-insensitively); the others choose among the poll's options,
except a check whose spec has no options (a typed number or word)."""
POLL_STATES = ("open", "revealed", "closed")
"""open: taking answers; revealed: locked, the room beside the model; closed: over (answers kept)."""

MAX_ANSWER_CHARS = 80
MAX_NICKNAME_CHARS = 24
MAX_TITLE_CHARS = 80
MAX_PROMPT_CHARS = 400
MAX_SPEC_BYTES = 64_000
MAX_STUDENTS = 2_000
ANSWER_LIMIT = 10
ANSWER_WINDOW_S = 10.0
"""At most ANSWER_LIMIT answers per student in any ANSWER_WINDOW_S-second window (a fixed window per student,
kept in the store so that it holds across processes). Refused answers write nothing."""
DEFAULT_HOURS = 12.0
"""How long a room lasts (BERTLAB_CLASS_HOURS): then it is gone, students, answers and all."""


class ClassError(BertlabError):
    """Something about the class a person should read (never a traceback)."""


class RoomNotFound(ClassError):
    """No such room, or it has expired."""


class RoomClosed(ClassError):
    """The teacher ended the class."""


class Forbidden(ClassError):
    """A teacher's action without the teacher's key: refused and logged."""


class PollLocked(ClassError):
    """The poll is revealed or closed: it takes no more answers."""


class AnswerRefused(ClassError, InputError):
    """The answer is empty, too long, or not one of the poll's choices."""


class NoSuchPoll(ClassError, InputError):
    """The room has no poll with that id."""


class RateLimited(ClassError):
    """Too many answers from one student in a short time."""


class NotAStudent(ClassError):
    """The student id is not in this room (a stale link, or the room was replaced)."""


class StoreUnavailable(ClassError):
    """The store cannot be reached (Redis down, a file that cannot be written)."""


@dataclass(frozen=True)
class Room:
    code: str
    title: str
    created: float
    expires: float
    step: int
    closed: bool
    poll: int | None
    """The poll on screen (the latest opened, until the teacher closes it)."""
    refused: int
    """Teacher actions refused in this room (each also logged)."""
    settings: dict = field(default_factory=dict, compare=False)
    """What the teacher's page runs (model, text), for students who explore a step themselves."""


@dataclass(frozen=True)
class Student:
    id: str
    """Random and unguessable: it is the student's credential, kept in their link only."""
    nickname: str | None
    joined: float

    @property
    def name(self) -> str:
        """The nickname, or an anonymous name derived from the id (the id itself stays the student's)."""
        return self.nickname or anonymous_name(self.id)


@dataclass(frozen=True)
class Poll:
    id: int
    kind: str
    prompt: str
    spec: dict
    """What the students see and what the model says, computed by the teacher's page when the poll opened
    (bertlab.classroom.polls): options, tokens, correct answers, hints, the model's top-k, ..."""
    status: str
    opened: float
    result: dict | None = None
    """What the teacher's page computed at reveal from the room's locked answers (e.g. each guess's rank)."""

    @property
    def options(self) -> list[str] | None:
        options = self.spec.get("options")
        return list(options) if options else None

    @property
    def free_text(self) -> bool:
        return self.options is None


@dataclass(frozen=True)
class Answer:
    poll: int
    student: str
    answer: str
    at: float


def anonymous_name(student_id: str) -> str:
    return "anonymous-" + hashlib.sha256(student_id.encode()).hexdigest()[:6]


def normalize_code(code: str) -> str:
    """'abc def' -> 'ABCDEF'; anything else is refused in words."""
    cleaned = re.sub(r"[\s-]", "", str(code or "")).upper()
    if len(cleaned) != CODE_LENGTH or any(c not in ALPHABET for c in cleaned):
        raise RoomNotFound(f"A class code is {CODE_LENGTH} letters (like KQWMRT); '{_shown(code)}' is not one.")
    return cleaned


def _shown(text: object, limit: int = 20) -> str:
    text = str(text or "")
    return text[:limit] + ("…" if len(text) > limit else "")


def clean_text(text: object, what: str, limit: int, empty_ok: bool = False) -> str:
    """Whitespace collapsed; control and formatting characters, and over-long text, refused in words."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise AnswerRefused(f"{what} must be text.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and not c.isspace() for c in text):
        raise AnswerRefused(f"{what} contains control characters.")
    text = " ".join(text.split())
    if not text and not empty_ok:
        raise AnswerRefused(f"{what} is empty.")
    if len(text) > limit:
        raise AnswerRefused(f"{what} is {len(text)} characters long; at most {limit} are accepted.")
    return text


def group_key(poll: Poll, answer: str) -> str:
    """How answers are counted together: typed answers case-insensitively, choices as they are."""
    return answer.casefold() if poll.free_text else answer


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def default_ttl_s() -> float:
    try:
        hours = float(os.environ.get("BERTLAB_CLASS_HOURS", DEFAULT_HOURS))
    except ValueError:
        hours = DEFAULT_HOURS
    return max(hours, 0.01) * 3600


class ClassStore(ABC):
    """One store interface for a live class; `bertlab.classroom.open_store()` picks the back end.

    Teacher actions take the room's teacher key (returned once, by `create_room`); a wrong key raises
    Forbidden, and the attempt is counted in the room and logged. Student calls take the student's id
    (returned by `join`)."""

    kind = "store"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    # --- what a back end provides (each one atomic in its database) -----------------------------

    @abstractmethod
    def _insert_room(self, room: Room, secret_hash: str) -> bool:
        """Create the room unless its code is taken (False)."""

    @abstractmethod
    def _get_room(self, code: str) -> tuple[Room, str] | None:
        """The room and its teacher key's hash, or None."""

    @abstractmethod
    def _update_room(self, code: str, **fields) -> None:
        """Set step, closed or settings."""

    @abstractmethod
    def _add_refusal(self, code: str) -> None: ...

    @abstractmethod
    def _join(self, code: str, student: Student, max_students: int) -> Student | str:
        """Add the student (a taken nickname gets ' 2', ' 3', ...), or a reason: 'full'."""

    @abstractmethod
    def _get_student(self, code: str, student_id: str) -> Student | None: ...

    @abstractmethod
    def _students(self, code: str) -> list[Student]: ...

    @abstractmethod
    def _student_count(self, code: str) -> int: ...

    @abstractmethod
    def _open_poll(self, code: str, kind: str, prompt: str, spec: dict, at: float) -> int:
        """A new poll, open and on screen; the poll that was open before is closed. Returns its id."""

    @abstractmethod
    def _set_poll_status(self, code: str, poll_id: int, status: str, allowed_from: tuple[str, ...], result: dict | None) -> str | None:
        """Move a poll to `status` if it is in one of `allowed_from` (its status before, or None: no such poll)."""

    @abstractmethod
    def _get_poll(self, code: str, poll_id: int) -> Poll | None: ...

    @abstractmethod
    def _polls(self, code: str) -> list[Poll]: ...

    @abstractmethod
    def _put_answer(self, code: str, student_id: str, poll_id: int, answer: str, at: float, limit: int, window_s: float) -> str:
        """Store (or replace) the student's answer if the room is open, the student in it, the poll open and
        the student under the rate limit; commit before returning 'ok', else the reason: 'closed',
        'student', 'poll', 'locked', 'rate'. A refused answer writes nothing (the rate window aside)."""

    @abstractmethod
    def _answers(self, code: str, poll_id: int) -> list[Answer]: ...

    @abstractmethod
    def _answer_of(self, code: str, poll_id: int, student_id: str) -> Answer | None: ...

    @abstractmethod
    def _answer_count(self, code: str, poll_id: int) -> int: ...

    def describe(self) -> str:
        """Where the store is, for people (no password)."""
        return self.kind

    def close(self) -> None:
        """Release connections (the data stays)."""

    # --- rooms --------------------------------------------------------------------------------------

    def create_room(self, title: str = "", ttl_s: float | None = None, settings: dict | None = None) -> tuple[Room, str]:
        """A new room with a fresh code; returns it and the teacher key (shown once: it goes in the teacher's link)."""
        title = clean_text(title, "The class name", MAX_TITLE_CHARS, empty_ok=True)
        now = self.clock()
        ttl = default_ttl_s() if ttl_s is None else float(ttl_s)
        secret = secrets.token_urlsafe(18)
        for _ in range(50):
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
            room = Room(code, title, now, now + ttl, 0, False, None, 0, dict(settings or {}))
            if self._insert_room(room, _hash(secret)):
                log.info("class %s: started (%s, %.1f h)", code, self.describe(), ttl / 3600)
                return room, secret
        raise ClassError("No free class code was found; try again.")

    def room(self, code: str) -> Room:
        """The room, or RoomNotFound (also once it has expired)."""
        code = normalize_code(code)
        found = self._get_room(code)
        if found is None or found[0].expires <= self.clock():
            raise RoomNotFound(f"There is no class {code}: check the code (a class lasts {default_ttl_s() / 3600:g} hours).")
        return found[0]

    def is_teacher(self, code: str, secret: str | None) -> bool:
        """Whether `secret` is the room's teacher key (no logging: use `teacher` for an action)."""
        found = self._get_room(normalize_code(code))
        return bool(found and secret) and hmac.compare_digest(found[1], _hash(str(secret)))

    def teacher(self, code: str, secret: str | None, action: str = "lead the class") -> Room:
        """The room, if `secret` is its teacher key; otherwise the attempt is counted, logged and refused."""
        room = self.room(code)
        if not self.is_teacher(room.code, secret):
            self._add_refusal(room.code)
            log.warning("class %s: refused '%s' without the teacher's key", room.code, action)
            raise Forbidden(f"Only the teacher's link can {action} in class {room.code}. This attempt was logged.")
        return room

    def set_step(self, code: str, secret: str | None, step: int) -> Room:
        room = self.teacher(code, secret, "change the lesson step")
        if not isinstance(step, int) or step < 0:
            raise InputError("A lesson step is a number from 0.")
        self._update_room(room.code, step=step)
        return self.room(room.code)

    def set_settings(self, code: str, secret: str | None, settings: dict) -> Room:
        room = self.teacher(code, secret, "change the class settings")
        if len(json.dumps(settings)) > MAX_SPEC_BYTES:
            raise InputError("The class settings are too large.")
        self._update_room(room.code, settings=dict(settings))
        return self.room(room.code)

    def close_room(self, code: str, secret: str | None) -> Room:
        """End the class: no more joins or answers; everything stays readable (and exportable) until it expires."""
        room = self.teacher(code, secret, "end the class")
        self._update_room(room.code, closed=True)
        log.info("class %s: ended by the teacher", room.code)
        return self.room(room.code)

    def _open_room(self, code: str) -> Room:
        room = self.room(code)
        if room.closed:
            raise RoomClosed(f"Class {room.code} has ended.")
        return room

    # --- students -----------------------------------------------------------------------------------

    def join(self, code: str, nickname: str | None = None) -> Student:
        """A new student (no account, no personal data: a nickname is optional)."""
        room = self._open_room(code)
        nickname = clean_text(nickname, "The nickname", MAX_NICKNAME_CHARS, empty_ok=True) or None
        student = Student(secrets.token_urlsafe(12), nickname, self.clock())
        joined = self._join(room.code, student, MAX_STUDENTS)
        if joined == "full":
            raise ClassError(f"Class {room.code} is full ({MAX_STUDENTS:,} students).")
        return joined

    def student(self, code: str, student_id: str | None) -> Student:
        room = self.room(code)
        found = self._get_student(room.code, str(student_id or ""))
        if found is None:
            raise NotAStudent(f"You are not in class {room.code} yet: join it again.")
        return found

    def students(self, code: str) -> list[Student]:
        return sorted(self._students(self.room(code).code), key=lambda s: s.joined)

    def student_count(self, code: str) -> int:
        return self._student_count(self.room(code).code)

    # --- polls --------------------------------------------------------------------------------------

    def open_poll(self, code: str, secret: str | None, kind: str, prompt: str, spec: dict | None = None) -> Poll:
        """Open a poll and put it on every screen (the poll open before it is locked: closed, answers kept)."""
        room = self.teacher(code, secret, "open a poll")
        if room.closed:
            raise RoomClosed(f"Class {room.code} has ended.")
        if kind not in POLL_KINDS:
            raise InputError(f"Unknown poll kind '{_shown(kind)}': choose one of {', '.join(POLL_KINDS)}.")
        prompt = clean_text(prompt, "The question", MAX_PROMPT_CHARS)
        spec = dict(spec or {})
        if len(json.dumps(spec)) > MAX_SPEC_BYTES:
            raise InputError("The poll is too large (a shorter sentence will do).")
        options = spec.get("options")
        if options is not None and (not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options)):
            raise InputError("A poll's options are a non-empty list of texts.")
        poll_id = self._open_poll(room.code, kind, prompt, spec, self.clock())
        log.info("class %s: poll %d (%s) opened", room.code, poll_id, kind)
        return self.poll(room.code, poll_id)

    def reveal_poll(self, code: str, secret: str | None, poll_id: int, result: dict | None = None) -> Poll:
        """Lock the poll and show the room beside the model (`result`: what the teacher's page computed then)."""
        room = self.teacher(code, secret, "reveal a poll")
        if result is not None and len(json.dumps(result)) > MAX_SPEC_BYTES:
            raise InputError("The poll's result is too large.")
        before = self._set_poll_status(room.code, int(poll_id), "revealed", ("open",), result)
        if before is None:
            raise NoSuchPoll(f"Class {room.code} has no poll {poll_id}.")
        return self.poll(room.code, poll_id)

    def close_poll(self, code: str, secret: str | None, poll_id: int) -> Poll:
        """Take the poll off the screens (its answers are kept)."""
        room = self.teacher(code, secret, "close a poll")
        if self._set_poll_status(room.code, int(poll_id), "closed", ("open", "revealed", "closed"), None) is None:
            raise NoSuchPoll(f"Class {room.code} has no poll {poll_id}.")
        return self.poll(room.code, poll_id)

    def poll(self, code: str, poll_id: int) -> Poll:
        room = self.room(code)
        found = self._get_poll(room.code, int(poll_id))
        if found is None:
            raise NoSuchPoll(f"Class {room.code} has no poll {poll_id}.")
        return found

    def current_poll(self, code: str) -> Poll | None:
        room = self.room(code)
        return None if room.poll is None else self._get_poll(room.code, room.poll)

    def polls(self, code: str) -> list[Poll]:
        return sorted(self._polls(self.room(code).code), key=lambda p: p.id)

    # --- answers ------------------------------------------------------------------------------------

    def answer(self, code: str, student_id: str, poll_id: int, answer: str) -> Answer:
        """Store the student's answer (replacing their earlier one) and return it once it is committed."""
        code = normalize_code(code)
        text = clean_text(answer, "Your answer", MAX_ANSWER_CHARS)
        poll = self.poll(code, poll_id)
        if poll.options is not None and text not in poll.options:
            raise AnswerRefused(f"'{_shown(text)}' is not one of this poll's choices.")
        at = self.clock()
        outcome = self._put_answer(code, str(student_id or ""), poll.id, text, at, ANSWER_LIMIT, ANSWER_WINDOW_S)
        if outcome == "ok":
            return Answer(poll.id, str(student_id), text, at)
        raise {
            "room": RoomNotFound(f"There is no class {code}."),
            "closed": RoomClosed(f"Class {code} has ended."),
            "student": NotAStudent(f"You are not in class {code} yet: join it again."),
            "poll": NoSuchPoll(f"Class {code} has no poll {poll_id}."),
            "locked": PollLocked("This poll is locked: the teacher has revealed or closed it."),
            "rate": RateLimited(f"Too many answers at once: at most {ANSWER_LIMIT} every {ANSWER_WINDOW_S:g} seconds."),
        }.get(outcome, ClassError(f"The answer was not stored ({outcome})."))

    def answers(self, code: str, poll_id: int) -> list[Answer]:
        room = self.room(code)
        return sorted(self._answers(room.code, int(poll_id)), key=lambda a: (a.at, a.student))

    def answer_of(self, code: str, poll_id: int, student_id: str) -> Answer | None:
        return self._answer_of(self.room(code).code, int(poll_id), str(student_id or ""))

    def answer_count(self, code: str, poll_id: int) -> int:
        return self._answer_count(self.room(code).code, int(poll_id))

    def histogram(self, code: str, poll_id: int) -> dict[str, int]:
        """Answers counted together (typed ones case-insensitively), most common first, then alphabetically."""
        poll = self.poll(code, poll_id)
        counts = Counter(group_key(poll, a.answer) for a in self.answers(code, poll_id))
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    # --- export -------------------------------------------------------------------------------------

    def export(self, code: str) -> dict:
        """The JSON summary: `{"code", "students", "polls": [{"id", "kind", "prompt", "answers": [{"student",
        "answer", "at"}], "histogram": {answer: count}}]}`; students is how many joined, a student is their
        nickname or anonymous name, `at` an ISO 8601 UTC time."""
        room = self.room(code)
        names = {s.id: s.name for s in self._students(room.code)}
        polls = []
        for poll in self.polls(room.code):
            answers = self.answers(room.code, poll.id)
            polls.append({
                "id": poll.id,
                "kind": poll.kind,
                "prompt": poll.prompt,
                "answers": [{"student": names.get(a.student, anonymous_name(a.student)), "answer": a.answer, "at": iso(a.at)} for a in answers],
                "histogram": self.histogram(room.code, poll.id),
            })
        return {"code": room.code, "students": len(names), "polls": polls}

    def export_csv(self, code: str, poll_id: int | None = None) -> str:
        """Answers as CSV, one row each: poll, kind, student (nickname or anonymous name), answer, at."""
        summary = self.export(code)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["poll", "kind", "student", "answer", "at"])
        for poll in summary["polls"]:
            if poll_id is not None and poll["id"] != int(poll_id):
                continue
            for a in poll["answers"]:
                writer.writerow([poll["id"], poll["kind"], _csv_safe(a["student"]), _csv_safe(a["answer"]), a["at"]])
        return out.getvalue()


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet would run as a formula (=, +, -, @) starts with a quote: students typed these."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
