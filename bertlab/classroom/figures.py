"""The projector's charts: the room's answers beside the model's, as pure functions of a poll and its
histogram (plotly figures; no Streamlit). Every text a student typed is escaped (plotly reads a subset of
HTML in labels). The room's trace is named "room" and the model's "model", with the answers themselves
(escaped) as customdata, so a test can read what is drawn."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .base import Poll, group_key
from .polls import position_of, tap_counts

ROOM = "#4C78A8"
RIGHT = "#2CA02C"
MODEL = "#F58518"
GREY = "#9AA5B1"
MAX_BARS = 15
"""Bars shown for typed answers (the rest are summed into 'other answers')."""


def _label(text: str, limit: int = 28) -> str:
    text = str(text)
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _room_bars(poll: Poll, histogram: dict[str, int], options: list[str] | None = None) -> go.Bar:
    """The room's answers as horizontal bars, most common on top; right answers green."""
    correct = {group_key(poll, c) for c in poll.spec.get("correct") or []}
    items = list(histogram.items())
    if options is not None:  # every option shown, in the poll's order, even with no votes
        items = [(o, histogram.get(o, 0)) for o in options] + [(k, v) for k, v in items if k not in options]
    elif len(items) > MAX_BARS:
        items = items[: MAX_BARS - 1] + [("(other answers)", sum(v for _, v in items[MAX_BARS - 1 :]))]
    ranks = (poll.result or {}).get("ranks", {})
    labels = []
    for key, _ in items:
        rank = ranks.get(key)
        extra = f"  #{rank['rank']:,} · {rank['prob']:.1%}" if rank and "rank" in rank else ""
        labels.append(_label(key) + extra)
    return go.Bar(
        name="room", orientation="h", x=[v for _, v in items][::-1], y=labels[::-1], customdata=[html.escape(k) for k, _ in items][::-1],
        marker_color=[RIGHT if k in correct else ROOM for k, _ in items][::-1], text=[v for _, v in items][::-1], textposition="auto",
        hovertemplate="%{customdata}: %{x}<extra>the room</extra>",
    )


def _students_axis(fig: go.Figure, histogram: dict[str, int], **where) -> None:
    """A count axis with whole numbers only."""
    top = max(histogram.values(), default=0)
    fig.update_xaxes(title_text="students", dtick=max(1, -(-top // 5)), rangemode="tozero", **where)


def room_chart(poll: Poll, histogram: dict[str, int], title: str = "The room") -> go.Figure:
    """The room's answers alone (before reveal, or a poll without a model side); right answers green."""
    fig = go.Figure(_room_bars(poll, histogram, poll.options if poll.kind in ("sense", "check") and poll.options and len(poll.options) <= 8 else None))
    fig.update_layout(title=title, showlegend=False, height=_height(len(fig.data[0].y)), margin=dict(l=10, r=10, t=50, b=30),
                      yaxis_automargin=True)
    _students_axis(fig, histogram)
    return fig


def _height(rows: int) -> int:
    return max(260, min(620, 90 + 34 * rows))


def _pair(stacked: bool, titles: tuple[str, str]):
    """Two panels: side by side (a projector), or one above the other (a phone)."""
    if stacked:
        return make_subplots(rows=2, cols=1, vertical_spacing=0.3, subplot_titles=titles), (2, 1)
    return make_subplots(rows=1, cols=2, horizontal_spacing=0.22, subplot_titles=titles), (1, 2)


def fill_chart(poll: Poll, histogram: dict[str, int], stacked: bool = False) -> go.Figure:
    """Fill the blank, revealed: the room's guesses (each with its rank and probability among all tokens) beside
    the model's top-k."""
    top = poll.spec.get("top", [])
    fig, (r2, c2) = _pair(stacked, ("The room's guesses (rank · probability)", f"{html.escape(poll.spec.get('model', 'BERT'))}'s top {len(top)}"))
    fig.add_trace(_room_bars(poll, histogram), row=1, col=1)
    fig.add_trace(go.Bar(
        name="model", orientation="h", x=[p["prob"] for p in top][::-1], y=[f"{i + 1}. {_label(p['token'])}" for i, p in enumerate(top)][::-1],
        customdata=[html.escape(p["token"]) for p in top][::-1], marker_color=MODEL, text=[f"{p['prob']:.1%}" for p in top][::-1],
        textposition="auto", hovertemplate="%{customdata}: %{x:.2%}<extra>the model</extra>",
    ), row=r2, col=c2)
    _students_axis(fig, histogram, row=1, col=1)
    fig.update_xaxes(title_text="probability", tickformat=".0%", row=r2, col=c2)
    rows = min(len(histogram), MAX_BARS) + len(top) if stacked else max(min(len(histogram), MAX_BARS), len(top), 1)
    fig.update_layout(showlegend=False, height=_height(rows), margin=dict(l=10, r=10, t=60, b=30))
    fig.update_yaxes(automargin=True)
    return fig


def sense_chart(poll: Poll, histogram: dict[str, int], stacked: bool = False) -> go.Figure:
    """Which sense, revealed: the room's votes beside the senses of the corpus contexts nearest to the word
    at the teacher's layer (their vote is the model's answer)."""
    spec = poll.spec
    options = spec.get("options", [])
    votes = spec.get("votes", {})
    layer = spec.get("layer", 0)
    where = "the embeddings" if layer == 0 else f"after layer {layer - 1}"
    fig, (r2, c2) = _pair(stacked, ("The room's votes", "The corpus' nearest contexts"))
    fig.add_trace(_room_bars(poll, histogram, options), row=1, col=1)
    fig.add_trace(go.Bar(
        name="model", orientation="h", x=[votes.get(o, 0) for o in options][::-1], y=[_label(o) for o in options][::-1],
        customdata=[html.escape(o) for o in options][::-1], marker_color=[RIGHT if o == spec.get("vote") else MODEL for o in options][::-1],
        text=[votes.get(o, 0) for o in options][::-1], textposition="auto", hovertemplate="%{customdata}: %{x}<extra>corpus contexts</extra>",
    ), row=r2, col=c2)
    _students_axis(fig, histogram, row=1, col=1)
    fig.update_xaxes(title_text=f"of the {len(spec.get('neighbors', []))} nearest, {where}", dtick=1, row=r2, col=c2)
    fig.update_layout(showlegend=False, height=_height(2 * len(options) + 2 if stacked else len(options) + 2), margin=dict(l=10, r=10, t=60, b=30))
    fig.update_yaxes(automargin=True)
    return fig


def token_chart(poll: Poll, histogram: dict[str, int], revealed: bool = True) -> go.Figure:
    """Token polls: the room's taps as a heat row over the tokens, and (revealed) under it the model's row: the
    head's attention weights, or where the mask blocks (1 = blocked)."""
    tokens = [_label(t, 14) for t in poll.spec.get("tokens", [])]
    counts = tap_counts(poll, histogram)
    total = max(sum(counts), 1)
    query = poll.spec.get("query")
    ticks = [f"<b>{t}</b>" if i == query else t for i, t in enumerate(tokens)]
    rows = 2 if revealed else 1
    model_title = ("the head's attention weights" if poll.kind == "head" else f"blocked by the {poll.spec.get('kind', '')} mask (1 = blocked)")
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.18,
                        subplot_titles=("The room's taps", model_title)[:rows])
    fig.add_trace(go.Heatmap(
        name="room", z=[[c / total for c in counts]], x=list(range(len(tokens))), y=["room"], customdata=[counts],
        text=[[str(c) if c else "" for c in counts]], texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1, showscale=False,
        hovertemplate="%{customdata} taps<extra></extra>",
    ), row=1, col=1)
    if revealed:
        if poll.kind == "head":
            row = poll.spec.get("row", [])
            text = [f"{w:.2f}" for w in row]
        else:
            row = [1.0 if b else 0.0 for b in poll.spec.get("blocked", [])]
            text = ["✕" if b else "" for b in poll.spec.get("blocked", [])]
        fig.add_trace(go.Heatmap(name="model", z=[row], x=list(range(len(tokens))), y=["model"], text=[text], texttemplate="%{text}",
                                 colorscale="Oranges", zmin=0, zmax=1, showscale=False, hovertemplate="%{z:.3f}<extra></extra>"), row=2, col=1)
    for r in range(1, rows + 1):
        fig.update_xaxes(tickmode="array", tickvals=list(range(len(tokens))), ticktext=ticks, showticklabels=True, row=r, col=1)
        fig.update_yaxes(showticklabels=False, row=r, col=1)
    fig.update_layout(height=170 + 130 * rows, margin=dict(l=10, r=10, t=50, b=40))
    return fig


def chart(poll: Poll, histogram: dict[str, int], revealed: bool, stacked: bool = False) -> go.Figure:
    """The chart for any poll: the room alone while it is open, beside the model once revealed (`stacked`: one
    above the other, for a phone)."""
    if poll.kind in ("head", "mask") or poll.spec.get("answer_kind") == "token":
        return token_chart(poll, histogram, revealed and poll.kind in ("head", "mask"))
    if revealed and poll.kind == "fill":
        return fill_chart(poll, histogram, stacked)
    if revealed and poll.kind == "sense":
        return sense_chart(poll, histogram, stacked)
    return room_chart(poll, histogram)


def summary(poll: Poll, histogram: dict[str, int], limit: int = 8) -> str:
    """The room's answers in words, for screen readers and the caption under the chart (escaped for markdown
    by the page)."""
    if not histogram:
        return "No answers yet."
    items = list(histogram.items())
    if poll.kind in ("head", "mask") or poll.spec.get("answer_kind") == "token":
        tokens = poll.spec.get("tokens", [])
        items = [(f"“{tokens[position_of(k)]}” ({position_of(k)})" if k.split(":", 1)[0].isdigit() and position_of(k) < len(tokens) else k, v)
                 for k, v in items]
    shown = ", ".join(f"{k} {v}" for k, v in items[:limit])
    return f"The room: {shown}" + (f", and {len(items) - limit} more answers" if len(items) > limit else "") + "."
