"""The class store in Redis (BERTLAB_CLASS_STORE=redis://host:port/db): one class shared by several server
processes (the lecture hall runs Streamlit replicas behind a proxy).

Each write that must check before it changes (join, open a poll, reveal, answer) is one Lua script, which
Redis runs atomically; the call returns after Redis has applied it. Durability is the server's setting:
with `appendonly yes` and `appendfsync always` an acknowledged answer survives a Redis restart (README).
A room's keys share the hash tag `{CODE}` (one cluster slot, so a script may touch them all) and expire
with the room.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from .base import MAX_NICKNAME_CHARS, Answer, ClassStore, Poll, Room, StoreUnavailable, Student

PREFIX = "bertlab:class:"
NICKNAME_TRIES = 100

CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
"""

JOIN = """
local room = redis.call('HMGET', KEYS[1], 'closed', 'expires_ms')
if not room[2] then return {'room'} end
if room[1] == '1' then return {'closed'} end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {'full'} end
local nickname = false
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i + 1], ARGV[1]) == 1 then nickname = ARGV[i]; break end
end
if #ARGV >= 4 and not nickname then return {'nickname'} end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({nickname = nickname or cjson.null, joined = ARGV[2]}))
redis.call('PEXPIREAT', KEYS[2], room[2])
redis.call('PEXPIREAT', KEYS[3], room[2])
return {'ok', nickname or ''}
"""

OPEN_POLL = """
local expires = redis.call('HGET', KEYS[1], 'expires_ms')
if not expires then return false end
local id = redis.call('HINCRBY', KEYS[1], 'next_poll', 1)
local states = redis.call('HGETALL', KEYS[3])
for i = 1, #states, 2 do
  if states[i + 1] == 'open' then redis.call('HSET', KEYS[3], states[i], 'closed') end
end
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('HSET', KEYS[3], id, 'open')
redis.call('HSET', KEYS[1], 'poll', id)
redis.call('PEXPIREAT', KEYS[2], expires)
redis.call('PEXPIREAT', KEYS[3], expires)
return id
"""

SET_STATUS = """
local now = redis.call('HGET', KEYS[2], ARGV[1])
if not now then return false end
if string.find(',' .. ARGV[3] .. ',', ',' .. now .. ',', 1, true) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
    redis.call('PEXPIREAT', KEYS[3], redis.call('HGET', KEYS[1], 'expires_ms'))
  end
  if ARGV[2] == 'closed' and redis.call('HGET', KEYS[1], 'poll') == ARGV[1] then redis.call('HSET', KEYS[1], 'poll', '') end
end
return now
"""

PUT_ANSWER = """
local room = redis.call('HMGET', KEYS[1], 'closed', 'expires_ms')
if not room[2] then return 'room' end
if room[1] == '1' then return 'closed' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 'student' end
local status = redis.call('HGET', KEYS[3], ARGV[2])
if not status then return 'poll' end
if status ~= 'open' then return 'locked' end
local window = redis.call('HMGET', KEYS[5], 'start', 'count')
local start, count = tonumber(window[1] or '0'), tonumber(window[2] or '0')
local now = tonumber(ARGV[6])
if now - start >= tonumber(ARGV[5]) then start, count = now, 0 end
if count >= tonumber(ARGV[4]) then return 'rate' end
redis.call('HSET', KEYS[5], 'start', tostring(start), 'count', count + 1)
redis.call('PEXPIREAT', KEYS[5], room[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('PEXPIREAT', KEYS[4], room[2])
return 'ok'
"""


class RedisStore(ClassStore):
    """The class store in a Redis server, shared by every process that names the same URL."""

    kind = "redis"

    def __init__(self, url: str, clock: Callable[[], float] = time.time, prefix: str = PREFIX) -> None:
        super().__init__(clock)
        import redis

        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.url = url
        self.prefix = prefix
        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)
        self._create = self.r.register_script(CREATE_ROOM)
        self._join_script = self.r.register_script(JOIN)
        self._open = self.r.register_script(OPEN_POLL)
        self._status = self.r.register_script(SET_STATUS)
        self._answer = self.r.register_script(PUT_ANSWER)

    def describe(self) -> str:
        kwargs = self.r.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        return f"Redis at {where}, database {kwargs.get('db', 0)}"

    def close(self) -> None:
        self.r.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._errors as err:
            raise StoreUnavailable(f"The class store ({self.describe()}) cannot be reached: {err}.") from err

    def _key(self, code: str, *parts: object) -> str:
        return f"{self.prefix}{{{code}}}:" + ":".join(str(p) for p in parts)

    # --- rooms --------------------------------------------------------------------------------------

    def _insert_room(self, room: Room, secret_hash: str) -> bool:
        expires_ms = int(room.expires * 1000) + 1
        fields = {
            "title": room.title, "secret_hash": secret_hash, "created": repr(room.created), "expires": repr(room.expires),
            "expires_ms": expires_ms, "step": 0, "closed": 0, "poll": "", "refused": 0, "next_poll": 0,
            "settings": json.dumps(room.settings),
        }
        with self._guard():
            return bool(self._create(keys=[self._key(room.code, "room")], args=[expires_ms, *[x for kv in fields.items() for x in kv]]))

    def _get_room(self, code: str) -> tuple[Room, str] | None:
        with self._guard():
            r = self.r.hgetall(self._key(code, "room"))
        if not r:
            return None
        room = Room(code, r["title"], float(r["created"]), float(r["expires"]), int(r["step"]), r["closed"] == "1",
                    int(r["poll"]) if r.get("poll") else None, int(r["refused"]), json.loads(r.get("settings") or "{}"))
        return room, r["secret_hash"]

    def _update_room(self, code: str, **fields) -> None:
        values = {"step": int, "closed": lambda v: int(bool(v)), "settings": json.dumps}
        with self._guard():
            key = self._key(code, "room")
            if self.r.exists(key):
                self.r.hset(key, mapping={name: values[name](value) for name, value in fields.items()})

    def _add_refusal(self, code: str) -> None:
        with self._guard():
            key = self._key(code, "room")
            if self.r.exists(key):
                self.r.hincrby(key, "refused", 1)

    # --- students -----------------------------------------------------------------------------------

    def _join(self, code: str, student: Student, max_students: int) -> Student | str:
        candidates: list[str] = []
        if student.nickname:
            candidates.append(student.nickname)
            for n in range(2, NICKNAME_TRIES + 1):
                candidates.append(f"{student.nickname[: MAX_NICKNAME_CHARS - len(str(n)) - 1]} {n}")
        args = [student.id, repr(student.joined), max_students, *[x for name in candidates for x in (name, name.casefold())]]
        with self._guard():
            outcome = self._join_script(keys=[self._key(code, "room"), self._key(code, "students"), self._key(code, "nicknames")], args=args)
        if outcome[0] != "ok":
            return outcome[0]
        return Student(student.id, outcome[1] or None, student.joined)

    @staticmethod
    def _student(student_id: str, raw: str) -> Student:
        data = json.loads(raw)
        return Student(student_id, data.get("nickname") or None, float(data["joined"]))

    def _get_student(self, code: str, student_id: str) -> Student | None:
        with self._guard():
            raw = self.r.hget(self._key(code, "students"), student_id)
        return None if raw is None else self._student(student_id, raw)

    def _students(self, code: str) -> list[Student]:
        with self._guard():
            return [self._student(sid, raw) for sid, raw in self.r.hgetall(self._key(code, "students")).items()]

    def _student_count(self, code: str) -> int:
        with self._guard():
            return self.r.hlen(self._key(code, "students"))

    # --- polls --------------------------------------------------------------------------------------

    def _open_poll(self, code: str, kind: str, prompt: str, spec: dict, at: float) -> int:
        body = json.dumps({"kind": kind, "prompt": prompt, "spec": spec, "opened": at})
        with self._guard():
            return int(self._open(keys=[self._key(code, "room"), self._key(code, "polls"), self._key(code, "status")], args=[body]))

    def _set_poll_status(self, code: str, poll_id: int, status: str, allowed_from: tuple[str, ...], result: dict | None) -> str | None:
        with self._guard():
            return self._status(
                keys=[self._key(code, "room"), self._key(code, "status"), self._key(code, "results")],
                args=[poll_id, status, ",".join(allowed_from), "" if result is None else json.dumps(result)],
            )

    def _polls_where(self, code: str, ids: list[str] | None) -> list[Poll]:
        with self._guard():
            pipe = self.r.pipeline(transaction=True)  # one consistent read of the three hashes
            for part in ("polls", "status", "results"):
                key = self._key(code, part)
                pipe.hgetall(key) if ids is None else pipe.hmget(key, ids)
            bodies, states, results = pipe.execute()
        if ids is not None:
            bodies, states, results = (dict(zip(ids, values)) for values in (bodies, states, results))
        polls = []
        for pid, raw in bodies.items():
            if raw is None:
                continue
            data = json.loads(raw)
            result = results.get(pid)
            polls.append(Poll(int(pid), data["kind"], data["prompt"], data["spec"], states.get(pid) or "closed", data["opened"],
                              None if result is None else json.loads(result)))
        return polls

    def _get_poll(self, code: str, poll_id: int) -> Poll | None:
        found = self._polls_where(code, [str(poll_id)])
        return found[0] if found else None

    def _polls(self, code: str) -> list[Poll]:
        return self._polls_where(code, None)

    # --- answers ------------------------------------------------------------------------------------

    def _put_answer(self, code: str, student_id: str, poll_id: int, answer: str, at: float, limit: int, window_s: float) -> str:
        keys = [self._key(code, "room"), self._key(code, "students"), self._key(code, "status"),
                self._key(code, "answers", poll_id), self._key(code, "rate", student_id)]
        with self._guard():
            return self._answer(keys=keys, args=[student_id, poll_id, json.dumps({"answer": answer, "at": at}), limit, window_s, repr(at)])

    def _answers(self, code: str, poll_id: int) -> list[Answer]:
        with self._guard():
            raw = self.r.hgetall(self._key(code, "answers", poll_id))
        return [Answer(poll_id, sid, d["answer"], d["at"]) for sid, d in ((sid, json.loads(v)) for sid, v in raw.items())]

    def _answer_of(self, code: str, poll_id: int, student_id: str) -> Answer | None:
        with self._guard():
            raw = self.r.hget(self._key(code, "answers", poll_id), student_id)
        if raw is None:
            return None
        data = json.loads(raw)
        return Answer(poll_id, student_id, data["answer"], data["at"])

    def _answer_count(self, code: str, poll_id: int) -> int:
        with self._guard():
            return self.r.hlen(self._key(code, "answers", poll_id))
