"""Issue 22 through Streamlit's AppTest (no browser): a teacher starts a class, a student joins and answers,
the teacher reveals; only the teacher's link has controls, a wrong key is refused and logged, and what students
typed is shown escaped. The store is a temporary SQLite file (BERTLAB_CLASS_DB)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from bertlab.classroom import lesson, open_store
from test_app import start

TEACH, JOIN = "pages/live_class_teacher.py", "pages/live_class_student.py"


@pytest.fixture
def class_db(tmp_path, monkeypatch) -> str:
    path = tmp_path / "class.sqlite3"
    monkeypatch.delenv("BERTLAB_CLASS_STORE", raising=False)
    monkeypatch.setenv("BERTLAB_CLASS_DB", str(path))
    return f"sqlite:///{path}"


def page(model: str, target: str, **params: str) -> AppTest:
    at = start(model)
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(target).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def param(at: AppTest, name: str) -> str:
    value = at.query_params[name]
    return value if isinstance(value, str) else value[0]


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "subheader", "title"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_class_from_start_to_reveal(tiny_bert_dir, class_db):
    store = open_store(class_db)
    teacher = page(str(tiny_bert_dir), TEACH)
    teacher.text_input(key="class_name").input("Week 3")
    teacher = click(teacher, "Start a class")
    code, key = param(teacher, "room"), param(teacher, "key")
    room = store.room(code)
    assert room.title == "Week 3" and store.is_teacher(code, key)
    assert room.settings["model"] == str(tiny_bert_dir)  # students exploring a step get the class's model
    assert f"class code {' '.join(code)}" in "".join(str(h.proto.body) for h in teacher.get("html"))
    assert {"Next step", "Open this poll on every phone", "End the class now"} <= set(labels(teacher))

    student = page(str(tiny_bert_dir), JOIN, room=code)
    student.text_input(key="class_join_nickname").input("<b>Sam</b>")
    student = click(student, "Join")
    me = param(student, "me")
    assert store.student(code, me).nickname == "<b>Sam</b>"
    assert "you are **&lt;b&gt;Sam&lt;/b&gt;**" in texts(student)  # escaped where it is shown (the browser test reads it)
    assert "Step 1 of 9 · Tokens" in texts(student)

    teacher = click(teacher, "Next step")  # the teacher moves the class; the student's page follows
    assert store.room(code).step == 1
    student.run()
    assert "Step 2 of 9 · Three embeddings" in texts(student)

    teacher = click(teacher, "Open this poll on every phone")  # the step's check
    poll = store.current_poll(code)
    assert poll.kind == "check" and poll.spec["step_name"] == lesson.STEPS[1]
    student.run()
    wrong = next(o for o in poll.options if o not in poll.spec["correct"])
    student.radio(key=f"class_answer_choice_{poll.id}").set_value(wrong)
    student = click(student, "Check")
    assert store.answer_of(code, poll.id, me).answer == wrong
    assert "Not yet" in texts(student) and "Show a hint (1 of 2)" in labels(student)
    student = click(student, "Show a hint (1 of 2)")
    assert poll.spec["hints"][0] in texts(student) and poll.spec["hints"][1] not in texts(student)  # one at a time
    student.radio(key=f"class_answer_choice_{poll.id}").set_value(poll.spec["correct"][0])
    student = click(student, "Check")
    assert "Right" in texts(student)

    teacher.run()
    assert "**1** of 1 answered" in texts(teacher)
    teacher = click(teacher, "Reveal")
    assert store.poll(code, poll.id).status == "revealed"
    student.run()
    assert "The answer: **" in texts(student) and not [b for b in labels(student) if b == "Check"]  # locked: no form
    teacher = click(teacher, "Close this poll")
    assert store.current_poll(code) is None


def test_only_the_teachers_link_has_controls_and_a_wrong_key_is_refused_and_logged(tiny_bert_dir, class_db, caplog):
    store = open_store(class_db)
    room, key = store.create_room()
    store.open_poll(room.code, key, "sense", "Which sense?", {"options": ["river", "finance"]})
    projector = page(str(tiny_bert_dir), TEACH, room=room.code)
    assert "Projector view: the controls are on the teacher's link." in texts(projector)
    assert not {"Next step", "Reveal", "Close this poll", "End the class now"} & set(labels(projector))
    assert store.room(room.code).refused == 0  # looking is not an attempt

    guess = page(str(tiny_bert_dir), TEACH, room=room.code, key="guessed-key")
    assert "attempt was logged" in texts(guess)
    assert not {"Next step", "Reveal", "Close this poll", "End the class now"} & set(labels(guess))
    assert store.room(room.code).refused == 1 and "refused" in caplog.text
    assert store.current_poll(room.code).status == "open" and store.room(room.code).step == 0

    student = page(str(tiny_bert_dir), JOIN, room=room.code)
    student = click(student, "Join")
    me = param(student, "me")
    assert me != key and key not in str(student.query_params)  # a student's link never holds the key
    assert not {"Next step", "Reveal", "Close this poll", "End the class now"} & set(labels(student))


def test_a_stale_student_link_asks_to_join_again(tiny_bert_dir, class_db):
    store = open_store(class_db)
    room, _ = store.create_room()
    at = page(str(tiny_bert_dir), JOIN, room=room.code, me="not-a-student")
    assert "join it again" in texts(at) and "Join" in labels(at)
    at = page(str(tiny_bert_dir), JOIN, room="QQQQQQ")
    assert "no class QQQQQQ" in texts(at)
    at = page(str(tiny_bert_dir), TEACH, room="nonsense")
    assert "is not one" in texts(at) and not at.exception
