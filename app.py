"""bertlab: a live BERT laboratory. Run with `./lab app` (or `python lab_serve.py`)."""

import streamlit as st

PRESENTING = st.query_params.get("present", "").lower() in ("1", "true")
st.set_page_config(page_title="bertlab", page_icon="🔬", layout="wide", initial_sidebar_state="collapsed" if PRESENTING else "auto")

# The first paint: a phone's first visit waits ~15 s for torch and the weights, and the sidebar is collapsed there.
top = st.empty()
top.info("⏳ Loading BERT… the first visit takes about 15 seconds.")

import lab_ui  # noqa: E402  (after set_page_config)

# The pages live in pages/. A folder of that name also means Streamlit's older, file-based navigation until a
# run calls st.navigation: lab_serve.py turns it off before a server's first run, but AppTest turns it back on
# before every run, and there a URL that names a page file's stem would run that file alone, without this
# script's sidebar. So no page file's stem is its url_path (tests/test_app.py checks).
LESSON = st.Page("pages/guided_lesson.py", title="Guided lesson", icon="🎓", url_path="guided-lesson", default=True)


PAGES = {
    "Learn": [
        LESSON,
        st.Page("pages/tokenization.py", title="Tokenization", icon="🧩", url_path="tokens"),
        st.Page("pages/three_embeddings.py", title="Embeddings", icon="➕", url_path="embeddings"),
        st.Page("pages/masked_lm.py", title="Masked LM", icon="🎭", url_path="masked-lm"),
        st.Page("pages/next_sentence.py", title="Next sentence", icon="⏭️", url_path="next-sentence"),
    ],
    "Look inside": [
        st.Page("pages/attention_maps.py", title="Attention", icon="🔗", url_path="attention"),
        st.Page("pages/inside_a_head.py", title="Inside a head", icon="🔍", url_path="head"),
        st.Page("pages/residual_stream.py", title="Layers and the residual stream", icon="🥞", url_path="layers"),
        st.Page("pages/bidirectional_vs_causal.py", title="Bidirectional vs causal", icon="↔️", url_path="masking"),
        st.Page("pages/word_sense.py", title="Word sense", icon="🏦", url_path="word-sense"),
    ],
    "Experiment": [
        st.Page("pages/run_experiments.py", title="Experiments", icon="🧪", url_path="experiments"),
    ],
    "Compare": [
        st.Page("pages/compare_models.py", title="Compare models", icon="⚖️", url_path="compare"),
    ],
    "Research": [
        st.Page("pages/token_influence.py", title="Does attention explain?", icon="🎯", url_path="influence"),
        st.Page("pages/head_atlas.py", title="Head atlas", icon="🗺️", url_path="atlas"),
    ],
    "Live class": [
        st.Page("pages/live_class_teacher.py", title="Teach a live class", icon="🧑‍🏫", url_path="teach"),
        st.Page("pages/live_class_student.py", title="Join a live class", icon="🙋", url_path="join"),
    ],
}
# /lesson, the lesson's name like every page's: Streamlit serves the default page only at "/" (its url_path is
# reserved, not served), so the same file is registered a second time, hidden, under "lesson". (Not a page that
# calls st.switch_page: that clears the link's parameters, which widgets bound to the URL forbid.)
ALIASES = [st.Page("pages/guided_lesson.py", title="Guided lesson", icon="🎓", url_path="lesson", visibility="hidden")]

# The sidebar lists the pages itself (lab_ui.sidebar, links under section headings): Streamlit's own menu puts
# list items outside any list, which screen readers announce wrongly (axe-core: "list", "listitem").
page = st.navigation({**PAGES, "": ALIASES}, position="hidden")
st.session_state["_page"] = page.url_path or "lesson"
lab_ui.sidebar(PAGES)
lab_ui.banner(top)  # replaces the loading message: the model that really runs, a truncated or long text
page.run()
