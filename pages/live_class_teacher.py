"""Teach a live class (/teach): start a room, put its code and QR code on the projector, lead the lesson step
by step, open, reveal and close polls, and show the room's answers beside the model's; export the answers.

Only the teacher's link (?room=CODE&key=...) has the controls; the same page without the key is a projector
view (no controls), and a wrong key is refused and logged."""

import json

import streamlit as st

import lab_class
import lab_ui
from bertlab.classroom import ClassError, Room, lesson

store = lab_class.store()
if store is None:
    lab_class.title("Teach a live class")
    st.stop()
code = st.query_params.get("room")

if not code:
    lab_class.title("Teach a live class")
    st.markdown(
        "Start a class and put this page on the projector: students join on their phones with a 6-letter code "
        "(or the QR code), you lead them through the lesson step by step, ask the room (fill the blank, which "
        "sense, which token a head looks at, where the mask blocks, each step's check) and reveal the room's "
        "answers beside the model's. Polls and questions run on the model and text in the sidebar."
    )
    with st.form("class_start"):
        title = st.text_input("Class name (optional)", max_chars=80, placeholder="e.g. NLP, week 3", key="class_name")
        started = st.form_submit_button("Start a class", type="primary", icon=":material/school:")
    st.caption(f"The class is kept in {store.describe()} until it expires; students need no account. To lead a class "
               "you started, open the teacher link you kept (it is the only key to the class).")
    if started:
        try:
            room, key = store.create_room(title, settings={"model": st.session_state.get("model"), "text": st.session_state.get("text"),
                                                           "pair": st.session_state.get("pair")})
        except ClassError as err:
            lab_class.shown(err)
            st.stop()
        st.query_params["room"], st.query_params["key"] = room.code, key
        st.rerun()
    st.stop()

try:
    room = store.room(code)
except ClassError as err:
    lab_class.title("Teach a live class")
    lab_class.shown(err)
    st.page_link("pages/live_class_teacher.py", label="Start a new class", icon="🏫", query_params={})
    st.stop()

key = st.query_params.get("key")
teacher = store.is_teacher(room.code, key)
lab_class.title(f"Live class · {room.title}" if room.title else "Live class")
if key and not teacher:
    try:
        store.teacher(room.code, key, "lead the class")  # counted and logged
    except ClassError as err:
        lab_class.shown(err)
elif not teacher:
    st.caption("Projector view: the controls are on the teacher's link.")

if teacher:  # students exploring a step see the class's model and text
    wanted = {"model": st.session_state.get("model"), "text": st.session_state.get("text"), "pair": st.session_state.get("pair")}
    if {k: room.settings.get(k) for k in wanted} != wanted:
        room = store.set_settings(room.code, key, wanted)

join_url = lab_class.join_link(room.code, st.session_state.get("model"))
left, right = st.columns([1, 2], gap="large")


def act(action, *args) -> None:
    """A teacher's button (a callback): the store checks the key; a refusal is shown on the next run."""
    try:
        action(room.code, key, *args)
    except ClassError as err:
        st.session_state["_class_error"] = str(err)


with left:
    lab_class.join_panel(room, join_url)

    @st.fragment(run_every=lab_class.REFRESH_S)
    def head_count() -> None:
        try:
            st.metric("Students in the room", store.student_count(room.code))
        except ClassError as err:
            lab_class.shown(err)

    head_count()

with right:
    if teacher and not room.closed:  # the teacher leads from the top of the projector's screen
        with st.container(horizontal=True, vertical_alignment="center"):
            st.button("Back", icon=":material/arrow_back:", key="class_back", disabled=room.step == 0, on_click=act, args=(store.set_step, room.step - 1))
            st.button("Next step", icon=":material/arrow_forward:", key="class_next", type="primary",
                      disabled=room.step >= len(lesson.STEPS) - 1, on_click=act, args=(store.set_step, room.step + 1))
            lab_class.lesson_link(room, room.step, label="Show this step")
        if "_class_error" in st.session_state:
            st.warning(st.session_state.pop("_class_error"), icon="✋")

    @st.fragment(run_every=lab_class.REFRESH_S)
    def live() -> None:
        """The room right now: the lesson step, the poll on screen, how many answered, the answers (and the model's)."""
        try:
            now: Room = store.room(room.code)
            lab_class.step_header(now.step)
            if now.closed:
                st.info("This class has ended: phones show a thank-you. The answers stay until the class expires (export below).", icon="🏁")
            poll = store.current_poll(now.code)
            if poll is None:
                st.info("No poll is on screen." + (" Ask the room below." if teacher and not now.closed else ""), icon="🗳️")
                return
            students = store.student_count(now.code)
            answered = store.answer_count(now.code, poll.id)
            st.markdown(f"**{lab_class.plain(poll.prompt)}**")
            with st.container(horizontal=True, vertical_alignment="center"):
                st.markdown(f"**{answered}** of {students} answered" + (" · locked" if poll.status != "open" else ""))
                if teacher and poll.status == "open" and st.button("Reveal", type="primary", icon=":material/visibility:", key=f"class_reveal_{poll.id}"):
                    lab_class.reveal(store, now, key, poll)
                    poll = store.poll(now.code, poll.id)
                if teacher:
                    st.button("Close this poll", icon=":material/close:", key=f"class_close_{poll.id}", on_click=act, args=(store.close_poll, poll.id))
            if poll.status == "open":
                if st.toggle("Show the answers before the reveal", key="class_show_live",
                             help="Off: the room commits to its answers before anyone sees the others'."):
                    lab_class.poll_results(store, now, poll, key=f"class_chart_{poll.id}_open", reveal_now=False)
                else:
                    st.caption("The answers stay hidden until you reveal them, so that everyone commits to a prediction first.")
            else:
                lab_class.poll_results(store, now, poll, key=f"class_chart_{poll.id}", reveal_now=True)
        except ClassError as err:
            lab_class.shown(err)

    with st.container(key="class_live"):
        live()

if not teacher:
    st.stop()

st.divider()
refused = f" · {room.refused} refused attempt{'s' if room.refused != 1 else ''} at teacher actions (logged)" if room.refused else ""
st.caption(f"Class {room.code} · stored in {store.describe()}{refused}")
with st.expander("Links: students, projector, and yours"):
    st.markdown("Students join with this link (or the code at the address above):")
    st.code(join_url, language=None)
    st.markdown("A projector or second screen without controls:")
    st.code(lab_class.link(lab_class.TEACH_PATH, room=room.code, present="true"), language=None)
    st.markdown("**Your teacher link: keep it private.** It is the only key to this class (bookmark it; it works after a restart):")
    st.code(lab_class.link(lab_class.TEACH_PATH, room=room.code, key=key), language=None)

with st.expander("Export the answers", icon=":material/download:"):
    try:
        summary = store.export(room.code)
        st.download_button("Summary of every poll (JSON)", json.dumps(summary, indent=1), file_name=f"class-{room.code}.json",
                           mime="application/json", on_click="ignore", icon=":material/data_object:")
        st.download_button("Every answer (CSV)", store.export_csv(room.code), file_name=f"class-{room.code}.csv", mime="text/csv",
                           on_click="ignore", icon=":material/table:")
        for poll in summary["polls"]:
            st.download_button(f"Poll {poll['id']}: {poll['prompt'][:60]} ({len(poll['answers'])} answers, CSV)",
                               store.export_csv(room.code, poll["id"]), file_name=f"class-{room.code}-poll-{poll['id']}.csv",
                               mime="text/csv", on_click="ignore", type="tertiary", key=f"class_csv_{poll['id']}")
        st.caption(f"The same from a terminal: `bertlab class export {room.code} --json` (or `--csv`).")
    except ClassError as err:
        lab_class.shown(err)

if room.closed:
    st.stop()

with st.popover("End the class", icon=":material/logout:"):
    st.markdown("Phones show a thank-you and take no more answers. Everything stays readable and exportable until the class expires.")
    if st.button("End the class now", type="primary", key="class_end"):
        try:
            store.close_room(room.code, key)
        except ClassError as err:
            lab_class.shown(err)
        st.rerun()

st.subheader("Ask the room", anchor=False)
lab_class.ask_panel(store, room, key)
