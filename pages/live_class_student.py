"""Join a live class (/join): a student joins by link or code with an optional nickname, follows the teacher's
lesson step (or explores on their own and rejoins), and answers the poll on screen from their phone.

A student's link (?room=CODE&me=...) carries their anonymous id, never the teacher's key: nothing here can
open, reveal, advance or close anything."""

import streamlit as st

import lab_class
from bertlab.classroom import ClassError, lesson

store = lab_class.store()
if store is None:
    lab_class.title("Join a live class")
    st.stop()
code, me = lab_class.student_identity()

problem = None
if code and me:
    try:
        store.student(code, me)
    except ClassError as err:  # a stale link (the class expired) or an id from another class: join again
        problem, me = err, None
        st.session_state.pop("_class_me", None)
        if "me" in st.query_params:
            del st.query_params["me"]

if not (code and me):
    lab_class.title("Join a live class")
    if problem is not None:
        lab_class.shown(problem)
    try:
        room = store.room(code) if code else None
    except ClassError as err:
        lab_class.shown(err)
        room = None
    if room is not None:
        st.markdown(f"Class **{room.code}**" + (f" · {lab_class.plain(room.title)}" if room.title else ""))
    lab_class.join_form(store, room.code if room else None)
    st.stop()

lab_class.title("Live class")


@st.fragment(run_every=lab_class.REFRESH_S)
def live() -> None:
    """The class as it is, read from the store every REFRESH_S seconds: the teacher's step (or the one this student
    explores), and the poll on screen. Answering, hints and exploring rerun only this panel.

    Everything that changes is drawn here: a panel that calls st.rerun() to redraw the page when the teacher moves
    on would be cheaper for a phone's browser, but Streamlit 1.67 then sometimes drops the redrawn page's elements
    below the panel (seen with 30 phones on one machine)."""
    try:
        room = store.room(code)
        student = store.student(code, me)
        st.caption(f"Class {room.code} · you are **{lab_class.plain(student.name)}**")
        if room.closed:
            st.success("The class has ended. Thank you for taking part!", icon="🏁")
            return
        step = room.step
        if not st.session_state.get("_class_exploring"):
            st.button("Explore on my own", icon=":material/explore:", key="class_explore", type="tertiary",
                      on_click=lab_class.explore, args=(True,), help="Pick any step yourself; the poll on screen stays here.")
        else:
            own = st.pills("Explore a step", range(len(lesson.STEPS)), format_func=lambda i: lesson.STEPS[i],
                           key="class_own_step", default=room.step)
            step = room.step if own is None else own
            st.button(f"Rejoin the class (step {room.step + 1}: {lesson.STEPS[room.step]})", on_click=lab_class.explore,
                      args=(False,), icon=":material/group:", key="class_rejoin")
        lab_class.step_header(step)
        poll = store.current_poll(room.code)
        if poll is not None:
            with st.container(border=True):
                st.markdown(f"**{lab_class.plain(poll.prompt)}**")
                if poll.status == "open":
                    lab_class.answer_form(store, room, me, poll)
                else:
                    lab_class.revealed_for_student(store, room, me, poll)
        st.markdown(lesson.SUMMARIES[lesson.STEPS[step]])
        lab_class.lesson_link(room, step)
    except ClassError as err:
        lab_class.shown(err)


live()
