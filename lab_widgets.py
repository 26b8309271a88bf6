"""Drawing helpers every page shares: headers, charts (touch, presenter and phone rules), token pickers and the
window of positions a long text is drawn through. No model, cache or engine calls here (those are lab_ui's);
pages reach these as `lab_ui.chart`, `lab_ui.token_window`, ... through lab_ui's imports.
"""

from __future__ import annotations

import html
import json

import numpy as np

import streamlit as st

from bertlab import figures, modebar
from bertlab.analysis import Analysis


def header(title: str, explanation: str, look_for: str) -> None:
    st.title(title)
    st.markdown(explanation)
    st.info(f"**What to look at:** {look_for}", icon="👀")


def notes(result: Analysis) -> None:
    """The analysis' notes, and its download as JSON (the same object `python -m bertlab analyze --json` prints)."""
    for note in result.notes:
        if note != result.model.notice:
            st.caption(f"ℹ️ {note}")
    st.download_button(
        "Download this analysis (JSON)",
        data=lambda: json.dumps(result.to_dict(), indent=1),
        file_name="bertlab-analysis.json",
        mime="application/json",
        on_click="ignore",
        key="analysis_json",
        icon=":material/download:",
    )


def presenting() -> bool:
    return str(st.session_state.get("present", st.query_params.get("present", ""))).lower() in ("1", "true")


PRESENTER_CSS = """<style>
html, body, [data-testid=stAppViewContainer] { font-size: 22px; color: #000; background: #fff; }
[data-testid=stMarkdownContainer] p, [data-testid=stMarkdownContainer] li { font-size: 1.25rem; line-height: 1.5; color: #000; }
h1 { font-size: 3.2rem !important; } h2, h3 { font-size: 2.2rem !important; }
[data-testid=stAlert] p { font-size: 1.2rem; }
.chips { font-size: 1.6rem !important; }
[data-testid=stProgress] p { font-size: 1.8rem !important; font-weight: 600; }
[data-testid=stMainBlockContainer] { max-width: 100%; padding-left: 2rem; padding-right: 2rem; padding-top: 4.5rem; }
.chart-title { font-size: 26px; }
</style>"""


def image(png: bytes, key: str, alt: str) -> None:
    """A server-rendered PNG with its download (sent only on click; shown as PNG, not re-encoded as JPEG); `alt`
    says what it shows to a screen reader."""
    st.image(png, width="content", output_format="PNG", alt=alt)
    st.download_button("PNG", lambda: png, file_name=f"bertlab-{key}.png", mime="image/png", type="tertiary",
                       icon=":material/download:", on_click="ignore", key=f"{key}_png")


TITLE_CHARS = figures.TITLE_CHARS
"""A chart title longer than this wraps (plotly's SVG titles never wrap, and a phone shows ~40 characters)."""

TOUCH_CSS = """<style>
/* On a touch screen plotly's toolbar sits over the chart title and hover-only buttons mean little: hide it
   there (the PNG/SVG buttons stay on desktop; the HTML download under each chart works everywhere). */
@media (hover: none) and (pointer: coarse) { .js-plotly-plot .modebar-container { display: none !important; } }
/* Pills and segmented controls scroll sideways, unmarked, when they do not fit (the Attention page's View on a
   phone hid Statistics and Rollout): wrap them onto a second line instead. */
[data-testid=stButtonGroup] > div:has(> button) { flex-wrap: wrap !important; overflow-x: visible !important; row-gap: 0.4rem; }
/* A token axis with many labels (chart(), DENSE_LABELS) keeps one label in three on a phone-sized screen: the
   server cannot know the width, and plotly never thins labels given as an array. */
@media (max-width: 640px) {
  [class*="st-key-dense_"] .xaxislayer-above > g:not(:nth-child(3n+1)) { display: none; }
}
/* Text a screen reader reads and the screen does not show (a chart in words): out of the layout, not hidden. */
[data-testid=stElementContainer]:has(> .stHtml .sr-only), .sr-only {
  position: absolute !important; width: 1px !important; height: 1px !important; overflow: hidden !important;
  clip-path: inset(50%) !important; white-space: nowrap; margin: 0 !important; padding: 0 !important;
}
/* A title over a row of chart panels (chart(), figures.panels), in plotly's own title type. */
.chart-title { font-size: 17px; margin: 0; color: #111827; }
/* Contrast of at least 4.5:1 for small text (WCAG AA, checked by axe-core in tests/test_access.py): Streamlit's
   captions and widget hints are 60 % grey. */
[data-testid=stCaptionContainer], [data-testid=stCaptionContainer] p, [data-testid=stWidgetLabel] small,
[data-testid=stSliderTickBarMin], [data-testid=stSliderTickBarMax] { color: #4b5563 !important; opacity: 1 !important; }
[data-testid=stMarkdownContainer] blockquote, [data-testid=stMarkdownContainer] blockquote p { color: #374151 !important; opacity: 1 !important; }
/* Sections a phone shows only below 640 px (a hint that a wide view scrolls sideways). */
@media (min-width: 641px) { [class*="st-key-phone_only"] { display: none !important; } }
</style>"""


PRESENTER_TITLE_CHARS = 24
"""In presenter mode titles are 26 px: a chart in a third of a projector's width holds ~24 characters a line."""
PRESENTER_GROWTH = 1.25
"""In presenter mode a chart is this much taller: its labels and titles take more of it."""
PRESENTER_LABELS = 20
"""In presenter mode an axis keeps at most this many labels (their font is 18 px instead of 12)."""
DENSE_LABELS = 16
"""A chart with more token labels than this on an x axis is marked dense: a phone shows a third of them."""


def _dense(fig) -> bool:
    return any(len(axis.tickvals or ()) > DENSE_LABELS for axis in fig.select_xaxes())


def chart(fig, key: str) -> None:
    """A plotly chart with PNG and SVG downloads (plotly's own toolbar, no server round trip) and HTML on demand,
    its title kept off the data, and a description a screen reader reads in its place. A figure with subplots
    in several columns is drawn as one chart per column, side by side in st.columns, which stack on a screen
    narrower than 640 px (a phone): two panels squeezed into 350 px overprint each other's labels."""
    parts = figures.panels(fig)
    title = fig.layout.title.text if len(parts) > 1 else None
    st.html(f'<p class="sr-only">{html.escape(figures.describe(fig))}</p>')
    if title:  # already escaped by the figure builder: plotly titles are HTML
        st.html(f'<p class="chart-title" aria-hidden="true">{title}</p>')
    if len(parts) == 1:
        _one(fig, key, whole=fig)
        return
    for i, (column, part) in enumerate(zip(st.columns(len(parts)), parts)):
        with column:
            _one(part, f"{key}_{i}", whole=fig if i == len(parts) - 1 else None)


def _one(fig, key: str, whole=None) -> None:
    if _dense(fig):
        with st.container(key=f"dense_{key}"):
            _draw(fig, key, whole)
    else:
        _draw(fig, key, whole)


def _draw(fig, key: str, whole=None) -> None:
    """One plotly chart: presenter sizes, the title fitted after them, and the downloads (`whole`: the figure the
    HTML download holds, all its panels; None: no HTML button under this panel)."""
    if presenting():
        if fig.layout.height:  # twice the type needs more room, or the plot area shrinks to a strip
            fig.update_layout(height=int(fig.layout.height * PRESENTER_GROWTH))
        fig.update_layout(font=dict(size=20, color="#000"), title_font_size=26)
        fig.update_annotations(font_size=22)  # subplot titles are annotations, with their own (small) font
        fig.update_xaxes(tickfont_size=18)
        fig.update_yaxes(tickfont_size=18)
        for axis in (*fig.select_xaxes(), *fig.select_yaxes()):  # 18-px labels need twice the room: half as many
            if axis.tickvals is not None and axis.ticktext is not None and len(axis.tickvals) > PRESENTER_LABELS:
                step = -(-len(axis.tickvals) // PRESENTER_LABELS)
                axis.update(tickvals=axis.tickvals[::step], ticktext=axis.ticktext[::step])
    figures.fit_title(fig, chars=PRESENTER_TITLE_CHARS if presenting() else TITLE_CHARS)
    st.plotly_chart(
        fig,
        key=key,
        config={"toImageButtonOptions": {"format": "png", "filename": f"bertlab-{key}", "scale": 2}, "displaylogo": False},
    )
    st.html(modebar.SVG_BUTTON_SCRIPT, unsafe_allow_javascript=True)  # an SVG button beside the camera (PNG)
    if whole is not None:
        st.download_button(
            "HTML", data=lambda: whole.to_html(include_plotlyjs=True, full_html=True), file_name=f"bertlab-{key}.html",
            mime="text/html", on_click="ignore", key=f"{key}_html", type="tertiary", icon=":material/download:",
            help="This chart as a standalone, offline HTML file (PNG and SVG: the camera and SVG icons on the chart).",
        )


def layer_head(result: Analysis, prefix: str = "") -> tuple[int, int]:
    """Layer and head sliders bound to the URL."""
    c1, c2 = st.columns(2)
    layers, heads = result.model.layers, result.model.heads
    for key, top in ((f"{prefix}layer", layers - 1), (f"{prefix}head", heads - 1)):
        if key in st.session_state and st.session_state[key] > top:
            st.session_state[key] = top
    layer = c1.slider("Layer", 0, layers - 1, key=f"{prefix}layer", bind="query-params")
    head = c2.slider("Head", 0, heads - 1, key=f"{prefix}head", bind="query-params")
    return layer, head


def top_share(tokens, weights: np.ndarray) -> str:
    """How much of one attention row its largest weights take, measured (a 'What to notice' must hold for the
    model on screen: random weights spread a row evenly)."""
    order = np.argsort(weights)[::-1]
    top = order[: min(3, len(order))]
    return (f"Here the top key, “{tokens[int(order[0])].text}”, takes {weights[order[0]]:.0%} of the row and the "
            f"{len(top)} largest {weights[top].sum():.0%}.")


def token_labels(tokens) -> list[str]:
    """Token texts made unique (a repeated piece gets its position), because a URL-bound widget stores
    the label, and duplicate labels would point to the last occurrence."""
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t.text] = counts.get(t.text, 0) + 1
    return [t.text if counts[t.text] == 1 else f"{t.text} ({t.position})" for t in tokens]


def offered_positions(count: int, window: slice | None, chosen: list) -> list[int]:
    """The positions a token picker offers: the window's, and any already chosen (valid positions only), so that
    moving the window zooms the charts and never changes a choice."""
    kept = {p for p in chosen if isinstance(p, int) and 0 <= p < count}
    return sorted(set(range(count)[window or slice(None)]) | kept)


def token_picker(label: str, tokens, key: str, default: int = 1, help: str | None = None,
                 window: slice | None = None) -> int:
    """Tap a token (pills wrap on a phone); bound to the URL by the token's label. With a window, its tokens are
    offered (512 pills would fill a phone's screen many times over), and the one already chosen stays offered:
    moving the window zooms the charts, it does not change the choice."""
    labels = token_labels(tokens)
    current = st.session_state.get(key)
    if not isinstance(current, int) or not 0 <= current < len(tokens):
        st.session_state.pop(key, None)
        current = None
    offered = offered_positions(len(tokens), window, [] if current is None else [current])
    chosen = st.pills(label, offered, key=key, default=default if default in offered else offered[0],
                      format_func=labels.__getitem__, bind="query-params", help=help)
    return offered[0] if chosen is None else int(chosen)


WINDOW_TOKENS = 40
"""Past this many tokens, pages draw a window of positions: 512 token labels on one axis cannot be read (nor
tapped), and a 512 × 512 heatmap is 262,144 cells to send to a phone."""
WINDOW_SIZES = (40, 80, 128)
"""How many positions a window may show: 128 at most (16,384 cells per heatmap); the All heads view and the
thumbnails show every position at once."""


def _shift_window(key: str, by: int, top: int) -> None:
    st.session_state[key] = min(max(0, int(st.session_state.get(key) or 0) + by), top)


def token_window(tokens, prefix: str = "") -> slice | None:
    """Which positions the charts draw when the text is longer than WINDOW_TOKENS (None: every token): how many
    (40, 80 or 128) and from which position, with ◀ ▶ to step by a window (a slider over 512 positions is
    0.7 px per position on a phone). Both are in the URL (?positions_from=100&positions_shown=40). Every
    position was computed; only the drawing zooms."""
    n = len(tokens)
    if n <= WINDOW_TOKENS:
        return None
    k_from, k_shown = f"{prefix}positions_from", f"{prefix}positions_shown"
    sizes = [size for size in WINDOW_SIZES if size < n]
    if st.session_state.get(k_shown) not in (None, *sizes):
        del st.session_state[k_shown]  # a size left over from a longer text
    with st.container(horizontal=True, vertical_alignment="bottom"):
        shown = st.segmented_control("Tokens shown", sizes, key=k_shown, default=sizes[0], bind="query-params",
                                     help=f"The text has {n} tokens; a chart labels {WINDOW_TOKENS} of them readably. "
                                          "All heads (Attention page) shows every position at once.") or sizes[0]
        top = n - shown
        if isinstance(st.session_state.get(k_from), int) and st.session_state[k_from] > top:
            st.session_state[k_from] = top  # a start left over from a longer text or a wider window
        st.button("◀", key=f"{k_from}_back", help=f"The {shown} positions before", on_click=_shift_window, args=(k_from, -shown, top))
        st.button("▶", key=f"{k_from}_next", help=f"The {shown} positions after", on_click=_shift_window, args=(k_from, shown, top))
    start = st.slider("From position", 0, top, key=k_from, bind="query-params")
    st.caption(f"The charts below show positions {start}–{start + shown - 1} of {n} tokens.")
    return slice(start, start + shown)
