"""Figure builders: pure functions from analysis data to plotly figures (no model calls, no Streamlit).

Token axes are numeric positions with the pieces as tick text, so a repeated word ("the" twice)
keeps its own row and column instead of being merged by plotly's category axis.
"""

from __future__ import annotations

import html
import re
import textwrap
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .analysis import Embeddings, MaskRun, Prediction
from .inside import HeadSteps
from .corpus import Probe, Projection
from .mlm import MaskEach
from .senses import Senses
from .tokens import Encoding, Token

SEGMENT_COLOURS = ("#2563eb", "#c2410c")  # text on white at 4.5:1 or more
SERIES_COLOURS = ("#0072B2", "#56B4E9", "#E69F00", "#CC79A7", "#009E73", "#D55E00")
"""Lines and bar groups told apart by colour alone: Okabe and Ito's palette, distinct to every kind of colour vision."""
MASK_COLOURS = {"bidirectional": "#2563eb", "causal": "#dc2626"}
SEQUENTIAL = "Blues"
"""The one colour scale for magnitudes (attention, similarity, distance, shares, per-head statistics): a single
hue from white to dark blue reads the same to every kind of colour vision, and in greyscale; the all-heads
thumbnails use its two ends."""
DIVERGING = "RdBu_r"
"""The one scale for signed values (vectors, their products, changes), centred on 0: blue below, red above, a
pair that colour-blind viewers tell apart (ColorBrewer's RdBu)."""
HEAT = SEQUENTIAL
HOVER_TOKENS = 96
TICK_LABELS = 40
"""At most this many token labels on an axis: past it every n-th token is labelled, with its position."""

Window = slice
"""The positions a chart shows (`slice(start, stop)`; None: every token). Charts keep the real positions on
their axes, so position 130 is labelled 130 in a window too; at 512 tokens a window keeps labels readable."""


def _pieces(tokens: Sequence[Token]) -> list[str]:
    """Token text for plotly labels, which interpret a subset of HTML: escape so '<b>' stays text."""
    return [html.escape(t.shown) for t in tokens]


def _positions(tokens: Sequence[Token]) -> list[int]:
    return [t.position for t in tokens]


def _windowed(tokens: Sequence[Token], window: Window | None) -> tuple[list[Token], slice]:
    """The tokens a chart draws and the slice that cuts its arrays the same way (every token without a window)."""
    w = window or slice(None)
    return list(tokens)[w], w


def _token_axis(fig: go.Figure, tokens: Sequence[Token], axis: str, row: int | None = None, col: int | None = None) -> None:
    """Positions as values, pieces as tick labels: duplicates stay distinct. Past TICK_LABELS tokens only every
    n-th is labelled, "piece · position", so a thinned axis still says where it is."""
    show_every = max(1, -(-len(tokens) // TICK_LABELS))
    shown = list(tokens)[::show_every]
    ticks = dict(
        tickmode="array",
        tickvals=_positions(shown),
        ticktext=_pieces(shown) if show_every == 1 else [f"{p} · {t.position}" for p, t in zip(_pieces(shown), shown)],
    )
    if axis == "x":
        fig.update_xaxes(**ticks, tickangle=-60, row=row, col=col)
    else:
        fig.update_yaxes(**ticks, autorange="reversed", row=row, col=col)


def attention_heatmap(tokens: Sequence[Token], weights: np.ndarray, title: str = "", zmax: float | None = 1.0,
                      window: Window | None = None) -> go.Figure:
    """One head's (query, key) attention, queries down, keys across; with a window, the queries and keys of
    those positions only (so a row need not sum to 1 inside it)."""
    tokens, w = _windowed(tokens, window)
    weights = np.asarray(weights)[w, w]
    if window is not None and zmax == 1.0 and weights.size:
        # a window of a long text: a row's weight is spread over hundreds of keys, so on a 0-1 scale the chart is
        # white; the colour bar says the fitted top
        zmax = max(float(weights.max()), 1e-6)
    pieces, positions = _pieces(tokens), _positions(tokens)
    # Token names in the hover cost a string per cell; past HOVER_TOKENS the hover shows positions only.
    labelled = len(tokens) <= HOVER_TOKENS
    hover = [[f"{pieces[q]} [{positions[q]}] → {pieces[k]} [{positions[k]}]" for k in range(len(pieces))] for q in range(len(pieces))] if labelled else None
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(weights, dtype=np.float32),
            x=positions,
            y=positions,
            text=hover,
            hovertemplate=("%{text}" if labelled else "query %{y} → key %{x}") + "<br>weight %{z:.3f}<extra></extra>",
            colorscale=HEAT,
            zmin=0,
            zmax=zmax,
            colorbar=dict(thickness=12),  # the default 30 px is a tenth of a phone's chart
        )
    )
    _token_axis(fig, tokens, "x")
    _token_axis(fig, tokens, "y")
    size = min(720, 160 + 18 * len(tokens))
    fig.update_layout(title=title, height=size, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="key (attended to)", yaxis_title="query")
    return fig


def shared_zmax(matrices: Sequence[np.ndarray], window: Window | None = None) -> float:
    """One top of the colour scale for attention heatmaps meant to be compared (two masks, before and after, two
    models): 1 for whole texts, else the largest weight any of them has inside the window."""
    if window is None:
        return 1.0
    return max([float(np.asarray(m)[window, window].max()) for m in matrices if np.asarray(m)[window, window].size] + [1e-6])


def mask_matrix(tokens: Sequence[Token], allowed: np.ndarray, kind: str, window: Window | None = None) -> go.Figure:
    """The mask itself: which key each query may see."""
    fig = attention_heatmap(tokens, allowed.astype(float), title=f"{kind} mask: may query attend to key?", window=window)
    blocked, seen = "#f3f4f6", MASK_COLOURS.get(kind, "#2563eb")
    fig.update_traces(  # two colours and a key that names them: 1 = may attend, 0 = blocked (weight exactly 0)
        colorscale=[[0, blocked], [0.5, blocked], [0.5, seen], [1, seen]], zmin=0, zmax=1,
        colorbar=dict(thickness=12, tickvals=[0.25, 0.75], ticktext=["blocked", "may attend"], outlinecolor="#9ca3af", outlinewidth=1),
        hovertemplate=fig.data[0].hovertemplate.replace("weight %{z:.3f}", "%{z:.0f} (1 = may attend, 0 = blocked)"),
    )
    return fig


def head_stat_grid(run: MaskRun, stat: str) -> go.Figure:
    """A (layer, head) grid of one statistic, for finding heads that do something recognisable."""
    values = run.head_stats[stat]
    layers, heads = values.shape
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(heads)),
            y=list(range(layers)),
            colorscale=DIVERGING if stat == "distance" else SEQUENTIAL,
            zmid=0 if stat == "distance" else None,
            hovertemplate="layer %{y}, head %{x}<br>" + stat + " %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{STAT_NAMES[stat]} per head ({run.kind})",
        xaxis_title="head",
        yaxis_title="layer",
        yaxis_autorange="reversed",
        height=140 + 26 * layers,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


STAT_NAMES = {
    "entropy": "attention entropy (nats)",
    "cls": "attention mass on [CLS]",
    "sep": "attention mass on [SEP]",
    "self": "attention mass on the token itself",
    "distance": "mean signed distance to attended tokens",
}
STAT_SHORT = {"entropy": "entropy", "cls": "on [CLS]", "sep": "on [SEP]", "self": "on itself", "distance": "mean distance"}
"""Labels that fit a fifth of a laptop's width (a metric's label is cut, not wrapped); the full name is its help."""


def embedding_parts(e: Embeddings) -> list[tuple[str, np.ndarray]]:
    """The embedding's vectors in the order the model computes them, named as a learner reads them: BERT's
    token, segment, position, sum, LayerNorm(sum); a family's own (no position, a projection before or after the
    LayerNorm, no LayerNorm). The model's own output is left out where it is the last step drawn (checked apart)."""
    steps = [s for s in e.steps if s != "model_output"]
    projection_first = "projection" in steps and "layernorm" in steps and steps.index("projection") < steps.index("layernorm")
    names = {"token": "token", "segment": "segment", "position": "position", "sum": "sum",
             "projection": "projection of the sum" if projection_first else "projection to the hidden width",
             "layernorm": "LayerNorm(projection)" if projection_first else "LayerNorm(sum)"}
    return [(names[s], getattr(e, s)) for s in steps]


def embedding_formula(e: Embeddings) -> str:
    """What the model computes from its lookups, as a formula: BERT's LayerNorm(token + segment + position),
    GPT-2's token + position, ALBERT's projection(LayerNorm(...)), DeBERTa's LayerNorm(projection(...))."""
    formula = " + ".join(s for s in e.steps if s in ("token", "segment", "position"))
    for step in e.steps:
        if step == "layernorm":
            formula = f"LayerNorm({formula})"
        elif step == "projection":
            formula = f"projection({formula})"
    return formula


def embeddings_heatmaps(tokens: Sequence[Token], e: Embeddings, window: Window | None = None) -> go.Figure:
    """The embedding's steps (BERT: token + segment + position = sum → LayerNorm) as strips over the dimensions."""
    tokens, w = _windowed(tokens, window)
    parts = [(name, value[w]) for name, value in embedding_parts(e)]
    fig = make_subplots(rows=len(parts), cols=1, shared_xaxes=True, vertical_spacing=0.03, subplot_titles=[p[0] for p in parts])
    for i, (name, value) in enumerate(parts, start=1):
        limit = float(np.abs(value).max()) or 1.0
        fig.add_trace(
            go.Heatmap(
                z=value,
                x=list(range(value.shape[1])),
                y=_positions(tokens),
                colorscale=DIVERGING,
                zmid=0,
                zmin=-limit,
                zmax=limit,
                showscale=False,
                hovertemplate=name + "<br>dim %{x}, token %{y}<br>%{z:.3f}<extra></extra>",
            ),
            row=i,
            col=1,
        )
        _token_axis(fig, tokens, "y", row=i, col=1)
    fig.update_xaxes(title_text="dimension", row=len(parts), col=1)
    fig.update_layout(height=len(parts) * (60 + 14 * len(tokens)), margin=dict(l=10, r=10, t=30, b=10))
    return fig


def embedding_norms(tokens: Sequence[Token], e: Embeddings, window: Window | None = None) -> go.Figure:
    """How large each part is per token: position and segment are not small corrections."""
    tokens, w = _windowed(tokens, window)
    fig = go.Figure()
    x = _positions(tokens)
    for colour, (name, value) in zip(SERIES_COLOURS, embedding_parts(e)):
        if value is not None:
            fig.add_bar(name=name, x=x, y=np.linalg.norm(value[w], axis=-1), marker_color=colour,
                        hovertemplate=name + " ‖·‖ = %{y:.2f}<extra></extra>")
    _token_axis(fig, tokens, "x")
    fig.update_layout(barmode="group", title="vector norm per token", height=360, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="L2 norm")
    return fig


def rollout_heatmap(tokens: Sequence[Token], run: MaskRun, layer: int, window: Window | None = None) -> go.Figure:
    return attention_heatmap(tokens, run.rollout_at(layer), title=f"attention rollout through layer {layer} ({run.kind})", zmax=None,
                             window=window)


STEP_TITLES = {
    "scores": "1. scores q·k",
    "scaled": "2. scaled: q·k / √d_head",
    "masked": "3. masked: + the mask (✕ = blocked)",
    "weights": "4. softmax: the attention weights",
}


def step_titles(steps: HeadSteps) -> dict[str, str]:
    """STEP_TITLES as this family computes the steps (DeBERTa's three terms, ModernBERT's rotated q and k, a local
    window)."""
    titles = dict(STEP_TITLES)
    if steps.terms:
        titles["scores"] = "1. scores: c2c + c2p + p2c"
        titles["scaled"] = f"2. scaled: × {steps.scale:.3f} = 1/√({round(steps.scale ** -2)}) (3 · d_head)"
    elif steps.q_rotated is not None:
        titles["scores"] = "1. scores q·k, after rotating q and k"
    if steps.window is not None:
        titles["masked"] = f"3. masked: + the mask, keys within ±{steps.window} only (✕ = blocked)"
    return titles


def head_vectors(tokens: Sequence[Token], steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """bertviz's neuron view from the checkpoint's own numbers: the query q over every key k, and q ⊙ k,
    whose row sums are the scores; dimensions across, aligned column by column (keys in the window only)."""
    tokens, w = _windowed(tokens, window)
    rotated = steps.q_rotated is not None  # the vectors that make the score: after the rotation, where there is one
    query = steps.q_rotated if rotated else steps.q
    keys, qk = (steps.k_rotated if rotated else steps.k)[w], steps.qk[w]
    n = len(tokens)
    after = " (rotated)" if rotated else ""
    fig = make_subplots(
        rows=2, cols=2, row_heights=[0.1, 0.9], vertical_spacing=0.14, horizontal_spacing=0.08,
        subplot_titles=(f"q{after}: the query of “{html.escape(steps.tokens[steps.query])}”", "q", f"k{after}: every key",
                        "q ⊙ k (each row sums to q·k)" + (": content→content only" if steps.terms else "")),
    )
    scale = float(max(np.abs(keys).max(), np.abs(query).max(), 1e-6))
    for col in (1, 2):
        fig.add_heatmap(z=query[None, :], colorscale=DIVERGING, zmid=0, zmin=-scale, zmax=scale, showscale=False,
                        hovertemplate="dim %{x}: %{z:.3f}<extra>q</extra>", row=1, col=col)
    fig.add_heatmap(z=keys, y=_positions(tokens), colorscale=DIVERGING, zmid=0, zmin=-scale, zmax=scale, showscale=False,
                    hovertemplate="key %{y}, dim %{x}: %{z:.3f}<extra>k</extra>", row=2, col=1)
    bound = float(np.abs(qk).max()) or 1.0
    fig.add_heatmap(z=qk, y=_positions(tokens), colorscale=DIVERGING, zmid=0, zmin=-bound, zmax=bound,
                    colorbar=dict(title="q⊙k", len=0.8, y=0.42),
                    hovertemplate="key %{y}, dim %{x}: %{z:.3f}<extra>q⊙k</extra>", row=2, col=2)
    for col in (1, 2):
        _token_axis(fig, tokens, "y", row=2, col=col)
        fig.update_yaxes(showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_xaxes(title_text="dimension of the head", row=2, col=col)
    fig.update_layout(height=min(900, 200 + 20 * n), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def head_steps_chart(tokens: Sequence[Token], steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """The four steps from scores to weights, one strip of bars per step, keys across (those in the window).
    Blocked keys are marked ✕ and get exactly 0 weight."""
    tokens, w = _windowed(tokens, window)
    titles = step_titles(steps)
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=list(titles.values()))
    colour = MASK_COLOURS.get(steps.mask, "#2563eb")
    blocked = steps.blocked[w]
    for row, name in enumerate(titles, start=1):
        values = (steps.weights if name == "weights" else (steps.scores if name == "scores" else steps.scaled))[w]
        shown = np.where(blocked, 0.0, values) if name == "masked" else values
        colours = ["#d1d5db" if b and name in ("masked", "weights") else colour for b in blocked]
        fig.add_bar(x=_positions(tokens), y=shown, marker_color=colours, showlegend=False,
                    text=["✕" if b and name == "masked" else "" for b in blocked], textposition="outside",
                    hovertemplate="key %{x}: %{y:.4f}<extra>" + name + "</extra>", row=row, col=1)
    # the weights' axis is fitted to the largest one shown: over 128 keys a row's weights are ~0.01 each, a flat
    # line on a 0-1 axis
    top = float(steps.weights[w].max()) if len(tokens) else 1.0
    fig.update_yaxes(range=[0, min(1.0, max(top, 1e-6) * 1.15)], row=4, col=1)
    _token_axis(fig, tokens, "x", row=4, col=1)
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=50, b=10),
                      title=f"layer {steps.layer}, head {steps.head}: query “{html.escape(steps.tokens[steps.query])}” ({steps.mask})")
    return fig


NAMED_POINTS = 12
"""The query-key plane names at most this many keys (those the query weights most): 512 names are a smear."""


def value_mixture(tokens: Sequence[Token], steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """weight × value for every key (those in the window), and their sum over every key: the head's output for
    the query. Past TICK_LABELS keys, every n-th row is named, and the keys the query weights most."""
    w = window or slice(None)
    z = np.vstack([steps.mixture[w], steps.output[None, :]])
    positions = list(range(len(steps.tokens)))[w]
    labels = [f"{html.escape(t)} × {weight:.2f}" for t, weight in zip(steps.tokens[w], steps.weights[w])]
    rows = list(range(len(labels)))
    if len(rows) > TICK_LABELS:
        heaviest = set(np.argsort(steps.weights[w])[::-1][:5].tolist())
        every = -(-len(rows) // (TICK_LABELS - len(heaviest)))
        rows = sorted(set(rows[::every]) | heaviest)
        labels = [f"{labels[r]} · {positions[r]}" for r in rows]
    else:
        labels = [labels[r] for r in rows]
    bound = float(np.abs(z).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=z, y=list(range(len(z))), colorscale=DIVERGING, zmid=0, zmin=-bound, zmax=bound,
                               colorbar=dict(thickness=12),
                               hovertemplate="row %{y}, dim %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(tickmode="array", tickvals=rows + [len(z) - 1], ticktext=labels + ["= output"], autorange="reversed")
    fig.update_layout(title="weight × value per key, summed = output", height=min(800, 160 + 20 * min(len(z), TICK_LABELS + 1)),
                      xaxis_title="dimension of the head", margin=dict(l=10, r=10, t=50, b=10))
    return fig


def query_key_projection(steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """Every token's query and key of this head on one plane (PCA of both together): a query lands near
    the keys whose dot product with it is large. Only the keys of the window the query weights most are named."""
    xy = steps.projection()
    n = len(steps.tokens)
    labels = [html.escape(t) for t in steps.tokens]
    shown = list(range(n)[window or slice(None)])
    named = set(sorted(shown, key=lambda k: -float(steps.weights[k]))[:NAMED_POINTS])  # the keys weighted most
    fig = go.Figure()
    fig.add_scatter(x=xy[n:, 0], y=xy[n:, 1], mode="markers+text", text=[l if i in named else "" for i, l in enumerate(labels)],
                    hovertext=labels, textposition="top center", name="keys",
                    marker=dict(size=9 + 30 * steps.weights, color="#ea580c", symbol="diamond"),
                    hovertemplate="key %{hovertext}<extra></extra>")
    fig.add_scatter(x=xy[:n, 0], y=xy[:n, 1], mode="markers", text=labels, name="queries", marker=dict(size=7, color="#93c5fd"),
                    hovertemplate="query %{text}<extra></extra>")
    fig.add_scatter(x=[xy[steps.query, 0]], y=[xy[steps.query, 1]], mode="markers+text", text=[labels[steps.query]], name="this query",
                    textposition="bottom center", marker=dict(size=16, color="#1d4ed8", symbol="star"))
    fig.update_layout(title="queries and keys, projected together", height=460,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.12))
    return fig


SUBLAYER_NAMES = {
    "input": "‖x‖ layer input",
    "attention": "‖A‖ attention output",
    "after_attention": "‖LayerNorm(A + x)‖",
    "ffn": "‖F‖ feed-forward output",
    "output": "‖LayerNorm(F + h)‖ layer output",
}
PRE_NORM_NAMES = {**SUBLAYER_NAMES, "after_attention": "‖h = x + A‖", "output": "‖h + F‖ layer output"}
"""A pre-norm family's stream is never normalized between layers: h = x + A(LayerNorm(x)), out = h + F(LayerNorm(h))."""


def sublayer_norms(norms: dict[str, np.ndarray], token: int, label: str, placement: str = "post") -> go.Figure:
    """One token's residual stream layer by layer: how large x, A, h, F and the output are."""
    fig = go.Figure()
    layers = list(range(next(iter(norms.values())).shape[0]))
    names = PRE_NORM_NAMES if placement == "pre" else SUBLAYER_NAMES
    for colour, (name, title) in zip(SERIES_COLOURS, names.items()):
        fig.add_scatter(x=layers, y=norms[name][:, token], mode="lines+markers", name=title,
                        line=dict(dash="dot" if name in ("attention", "ffn") else "solid", color=colour))
    fig.update_layout(title=f"vector lengths in each layer for “{html.escape(label)}”", xaxis_title="layer", yaxis_title="L2 norm",
                      height=420, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(dtick=1)
    return fig


def sublayer_shares(tokens: Sequence[Token], shares: dict[str, np.ndarray], window: Window | None = None) -> go.Figure:
    """Layer × token: how large each sublayer's update is next to the stream it is added to."""
    tokens, w = _windowed(tokens, window)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("attention: ‖A‖ / (‖A‖ + ‖x‖)", "feed-forward: ‖F‖ / (‖F‖ + ‖h‖)"),
                        horizontal_spacing=0.08)
    for col, name in enumerate(("attention", "ffn"), start=1):
        z = shares[name][:, w]
        fig.add_heatmap(z=z, x=_positions(tokens), y=list(range(z.shape[0])), colorscale=SEQUENTIAL, zmin=0, zmax=1,
                        showscale=col == 2, hovertemplate="layer %{y}, token %{x}: %{z:.3f}<extra></extra>", row=1, col=col)
        _token_axis(fig, tokens, "x", row=1, col=col)
        fig.update_yaxes(title_text="layer" if col == 1 else None, autorange="reversed", dtick=1, row=1, col=col)
    fig.update_layout(height=180 + 26 * next(iter(shares.values())).shape[0], margin=dict(l=10, r=10, t=50, b=10))
    return fig


def neuron_bars(tokens: Sequence[Token], activation: np.ndarray, layer: int, neuron: int, window: Window | None = None) -> go.Figure:
    """One feed-forward neuron's activation (after GELU) on every token of the text (in the window)."""
    tokens, w = _windowed(tokens, window)
    fig = go.Figure(go.Bar(x=_positions(tokens), y=np.asarray(activation)[w], marker_color="#7c3aed",
                           hovertemplate="token %{x}: %{y:.3f}<extra></extra>"))
    _token_axis(fig, tokens, "x")
    fig.update_layout(title=f"layer {layer}, neuron {neuron}: which tokens activate it", yaxis_title="activation (after GELU)",
                      height=340, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def head_grid(layers: int, heads: int, selected: Sequence[tuple[int, int]], values: np.ndarray | None = None,
              title: str = "heads") -> go.Figure:
    """A layer × head grid: the selected heads marked ✕, optionally coloured by a value per head (importance)."""
    z = np.zeros((layers, heads), dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
    marks = [["✕" if (l, h) in set(map(tuple, selected)) else "" for h in range(heads)] for l in range(layers)]
    bound = float(np.abs(z).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(heads)), y=list(range(layers)), text=marks, texttemplate="%{text}",
        colorscale=DIVERGING if values is not None else [[0, "#f3f4f6"], [1, "#f3f4f6"]], zmid=0 if values is not None else None,
        zmin=-bound if values is not None else None, zmax=bound if values is not None else None, showscale=values is not None,
        xgap=2, ygap=2, hovertemplate="layer %{y}, head %{x}" + (": %{z:.3f}" if values is not None else "") + "<extra></extra>",
    ))
    fig.update_layout(title=title, height=140 + 26 * layers, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(title="head", dtick=1), yaxis=dict(title="layer", dtick=1, autorange="reversed"))
    return fig


def change_heatmap(tokens: Sequence[Token], cosine: np.ndarray, title: str, window: Window | None = None) -> go.Figure:
    """1 − cosine(before, after) after each layer (and the embeddings) per token: where an experiment changed the stream."""
    return _layer_token_heatmap(tokens, 1 - np.asarray(cosine, dtype=np.float32), 0, SEQUENTIAL, title, "after layer", window)


def attribution_chart(tokens: Sequence[Token], rows: dict[str, np.ndarray], title: str, window: Window | None = None) -> go.Figure:
    """Strips of bars over the input tokens (in the window), one per explanation (attribution, attention row,
    rollout row), so a learner sees where they agree and where they do not."""
    tokens, w = _windowed(tokens, window)
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=list(rows))
    colours = ("#7c3aed", "#2563eb", "#0891b2", "#ea580c")
    for row, (name, values) in enumerate(rows.items(), start=1):
        values = np.asarray(values, dtype=np.float32)[w]
        fig.add_bar(x=_positions(tokens), y=values, marker_color=colours[(row - 1) % len(colours)], showlegend=False,
                    hovertemplate="token %{x}: %{y:.4f}<extra>" + html.escape(name) + "</extra>", row=row, col=1)
    _token_axis(fig, tokens, "x", row=len(rows), col=1)
    fig.update_layout(title=title, height=140 + 150 * len(rows), margin=dict(l=10, r=10, t=80, b=10))
    return fig


def prediction_bars(predictions: dict[str, list[Prediction]], title: str) -> go.Figure:
    """Top-k guesses for one [MASK], one bar group per mask type."""
    fig = make_subplots(rows=1, cols=len(predictions), subplot_titles=list(predictions), horizontal_spacing=0.15)
    for i, (kind, preds) in enumerate(predictions.items(), start=1):
        fig.add_bar(
            x=[p.prob for p in preds],
            y=[f"{r + 1}. {html.escape(p.token)}" for r, p in enumerate(preds)],
            orientation="h",
            marker_color=MASK_COLOURS.get(kind, "#2563eb"),
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            showlegend=False,
            row=1,
            col=i,
        )
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=i)
        fig.update_xaxes(range=[0, 1], title_text="probability", row=1, col=i)
    fig.update_layout(title=title, height=150 + 28 * max(len(p) for p in predictions.values()), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def mask_each_chart(tokens: Sequence[Token], each: MaskEach, window: Window | None = None) -> go.Figure:
    """log P(token | rest) for each token masked alone (those in the window): which words are predictable
    from context? The title's totals are over the whole text."""
    inside = set(range(len(tokens))[window or slice(None)])
    rows = [i for i, p in enumerate(each.positions) if p in inside]
    pieces = [html.escape(tokens[each.positions[i]].text) for i in rows]
    positions = [each.positions[i] for i in rows]
    log_probs = np.asarray(each.log_probs)[rows]
    fig = go.Figure(
        go.Bar(
            x=positions,
            y=log_probs,
            marker_color=MASK_COLOURS.get(each.kind, "#2563eb"),  # the bar's height is the value: one colour
            customdata=np.stack([[each.top[i].token for i in rows], np.asarray(each.ranks)[rows]], axis=-1),
            text=pieces,
            hovertemplate="%{text}: log P = %{y:.2f}<br>rank %{customdata[1]}, top guess %{customdata[0]}<extra></extra>",
        )
    )
    _token_axis(fig, [tokens[p] for p in positions], "x")
    fig.update_layout(
        title=f"mask each token ({each.kind}): pseudo-log-likelihood {each.pseudo_log_likelihood:.2f}, pseudo-perplexity {each.pseudo_perplexity:.2f}",
        yaxis_title="log P(original token)",
        height=380,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def logit_lens_chart(lens: list[list[Prediction]], position_label: str) -> go.Figure:
    """Top guess after the embeddings and after every layer."""
    layers = list(range(len(lens)))
    top = [preds[0] for preds in lens]
    alternatives = ["<br>".join(f"{p.token} {p.prob:.3f}" for p in preds) for preds in lens]
    fig = go.Figure(
        go.Bar(
            x=[p.prob for p in top],
            y=layers,
            orientation="h",
            text=[p.token for p in top],
            textposition="outside",
            customdata=[[label, a] for label, a in zip(hidden_state_labels(len(layers)), alternatives)],
            hovertemplate="after layer %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
            marker_color="#7c3aed",
        )
    )
    fig.update_layout(
        title=f"logit lens at {position_label}: the MLM head read at every layer",
        xaxis=dict(range=[0, 1.15], title="probability of the top guess"),
        yaxis=dict(**_hidden_state_axis(len(layers)), autorange="reversed"),
        height=140 + 28 * len(layers),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def hidden_state_labels(count: int) -> list[str]:
    """Hidden states named with the one numbering every page uses (blocks 0..L-1): the first is the embedding
    output, state i the output of block i-1."""
    return ["embeddings"] + [str(i) for i in range(count - 1)]


def hidden_state_name(index: int) -> str:
    """'the embeddings' or 'layer i' for hidden state `index` (0 = embedding output)."""
    return "the embeddings" if index == 0 else f"layer {index - 1}"


def _hidden_state_axis(count: int) -> dict:
    """An axis over hidden states 0..count-1 with the one numbering (embeddings, 0, 1, ...): numeric values and
    array ticks, because plotly reads a mix of 'embeddings' and digit strings as numbers and drops the word."""
    return dict(title="after layer", tickmode="array", tickvals=list(range(count)), ticktext=hidden_state_labels(count))


def _layer_token_heatmap(tokens: Sequence[Token], z: np.ndarray, first_layer: int, colorscale: str, title: str, layer_title: str,
                         window: Window | None = None) -> go.Figure:
    tokens, w = _windowed(tokens, window)
    z = np.asarray(z)[:, w]
    rows = hidden_state_labels(z.shape[0]) if first_layer == 0 else [str(i) for i in range(z.shape[0])]  # every row labelled
    names = [hidden_state_name(i) for i in range(z.shape[0])] if first_layer == 0 else [f"layer {i}" for i in range(z.shape[0])]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=_positions(tokens),
            y=list(range(z.shape[0])),
            text=[[name] * z.shape[1] for name in names],
            colorscale=colorscale,
            zmin=0,
            hovertemplate="after %{text}, token %{x}<br>1 − cosine = %{z:.4f}<extra></extra>",
        )
    )
    _token_axis(fig, tokens, "x")
    fig.update_layout(
        title=title,
        yaxis=dict(title=layer_title, autorange="reversed", tickmode="array", tickvals=list(range(z.shape[0])), ticktext=rows),
        height=160 + 26 * z.shape[0],
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def divergence_heatmap(tokens: Sequence[Token], distance: np.ndarray, window: Window | None = None) -> go.Figure:
    """1 − cosine(bidirectional, causal) per layer and token (`Analysis.divergence()`): where does seeing
    the right side matter?"""
    return _layer_token_heatmap(
        tokens, distance, 0, SEQUENTIAL,
        "how far the hidden states move apart: 1 − cosine(bidirectional, causal)", "after layer", window,
    )


def similarity_range(*results: Senses, layer: int) -> tuple[float, float]:
    """The lowest and highest cosine of every mask of every result at `layer`: one colour range for heatmaps
    meant to be compared side by side (bidirectional beside causal, before beside after)."""
    values = [r.similarity[kind][layer] for r in results for kind in r.similarity]
    low, high = float(min(v.min() for v in values)), float(max(v.max() for v in values))
    return (low, high) if high > low else (low - 1e-3, high + 1e-3)


def similarity_heatmap(result: Senses, kind: str, layer: int, zrange: tuple[float, float] | None = None) -> go.Figure:
    """Cosine of the target word between every pair of sentences under one mask. The colour range is fitted to
    the values (on a 0-1 scale, 0.74 and 1.0 look alike) and, by default, shared by both masks of `result`,
    so the two heatmaps drawn side by side use one scale."""
    labels = [f"S{i + 1}" for i in range(len(result.sentences))]
    hover = [[f"S{i + 1} vs S{j + 1}" for j in range(len(labels))] for i in range(len(labels))]
    low, high = zrange or similarity_range(result, layer=layer)
    fig = go.Figure(
        go.Heatmap(
            z=result.similarity[kind][layer],
            x=labels,
            y=labels,
            texttemplate="%{z:.3f}",
            customdata=hover,
            hovertemplate="%{customdata}: cosine %{z:.4f}<extra></extra>",
            colorscale=SEQUENTIAL,
            zmin=low,
            zmax=high,
            colorbar=dict(thickness=12),
        )
    )
    fig.update_layout(
        title=f"{kind}: cosine similarity of '{html.escape(result.target)}', after {'the embeddings' if layer == 0 else f'layer {layer - 1}'}",
        yaxis_autorange="reversed",
        height=160 + 48 * len(labels),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def similarity_by_layer(result: Senses, i: int, j: int, floor: float | None = None) -> go.Figure:
    """The cosine of the target word in sentence i vs sentence j, after every layer, under each mask. `floor`:
    the lowest value of the y axis, shared by charts drawn side by side (default: fitted, at most 0)."""
    fig = go.Figure()
    for kind, sim in result.similarity.items():
        fig.add_scatter(x=list(range(sim.shape[0])), y=sim[:, i, j], name=kind, mode="lines+markers", line_color=MASK_COLOURS.get(kind),
                        line_dash="dot" if kind == "causal" else "solid",
                        text=hidden_state_labels(sim.shape[0]), hovertemplate=kind + ", after layer %{text}: %{y:.4f}<extra></extra>")
    low = min(0.0, float(min(s[:, i, j].min() for s in result.similarity.values()))) if floor is None else floor
    fig.update_layout(
        title=f"cosine of '{html.escape(result.target)}' in S{i + 1} vs S{j + 1}, layer by layer",
        xaxis=_hidden_state_axis(next(iter(result.similarity.values())).shape[0]),
        yaxis=dict(title="cosine similarity", range=[low, 1.02]),
        height=340,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def projection_scatter(result: Senses, layer: int) -> go.Figure:
    kinds = list(result.projection)
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[f"{k} (PCA, after {hidden_state_name(layer)})" for k in kinds])
    for c, kind in enumerate(kinds, start=1):
        xy = result.projection[kind][layer]
        fig.add_scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers+text",
            text=[f"S{i + 1}" for i in range(len(xy))],
            textposition="top center",
            customdata=[html.escape(s) for s in result.sentences],
            hovertemplate="%{customdata}<extra></extra>",
            marker=dict(size=12, color=MASK_COLOURS.get(kind)),
            showlegend=False,
            row=1,
            col=c,
        )
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def nsp_gauge(probability: float) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[probability, 1 - probability],
            y=["IsNext", "NotNext"],
            orientation="h",
            marker_color=["#16a34a", "#9ca3af"],
            text=[f"{probability:.3f}", f"{1 - probability:.3f}"],
            textposition="auto",
        )
    )
    fig.update_layout(xaxis=dict(range=[0, 1], title="probability"), height=200, margin=dict(l=10, r=10, t=20, b=10))
    return fig



CHIP_STYLE = """<style>
.chips{display:flex;flex-wrap:wrap;gap:6px 4px;align-items:baseline;line-height:1.9;font-family:ui-monospace,Menlo,monospace;font-size:1.05rem}
.chip{border:2px solid;border-radius:8px;padding:2px 7px;margin:2px;white-space:nowrap}
.chip sub{color:#374151;font-size:.65em;margin-left:3px}
.seg0{border-color:#2563eb;background:#dbeafe;color:#1e3a8a}
.seg1{border-color:#ea580c;background:#ffedd5;color:#7c2d12}
.special{background:#e5e7eb;border-color:#6b7280;color:#111827;font-weight:600}
.cont{border-style:dashed}
.unk{background:#fee2e2;border-color:#dc2626;color:#7f1d1d}
</style>"""


def token_chips(encoding: Encoding) -> str:
    """Token chips as HTML (every piece escaped, byte-level pieces decoded): segment colour, special, a piece that
    continues a word, unknown; id and span on hover."""
    chips = []
    for t in encoding.tokens:
        source = encoding.text if t.segment == 0 else (encoding.pair or "")
        classes = ["chip", f"seg{t.segment}"] + ["special"] * t.special + ["cont"] * t.continuation + ["unk"] * t.unknown
        title = f"id {t.id} · position {t.position} · segment {'AB'[t.segment]}" + (
            f" · characters {t.start}–{t.end}: “{source[t.start:t.end]}”" if t.end > t.start else ""
        )
        chips.append(
            f'<span class="{" ".join(classes)}" title="{html.escape(title, quote=True)}">{html.escape(t.shown)}<sub>{t.id}</sub></span>'
        )
    return CHIP_STYLE + '<div class="chips">' + "".join(chips) + "</div>"


def layer_change_heatmap(tokens: Sequence[Token], change: np.ndarray, window: Window | None = None) -> go.Figure:
    """1 − cosine(hidden after layer l, hidden before it) (`MaskRun.layer_change()`): how much each
    post-norm block rewrites each token."""
    return _layer_token_heatmap(
        tokens, change, 1, SEQUENTIAL,
        "how much each layer rewrites each token: 1 − cosine(output, input)", "layer", window,
    )


SENSE_COLOURS = ("#E69F00", "#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")  # Okabe-Ito, orange and blue first


def probe_curve(probe: Probe, word: str | None = None) -> go.Figure:
    """Sense-probe accuracy by layer under each mask, with the majority-sense baseline: where senses separate."""
    data = probe if word is None else probe.words[word.strip().casefold()]
    fig = go.Figure()
    layers = list(range(probe.layers))
    for kind, accuracy in data.accuracy.items():
        fig.add_scatter(x=layers, y=accuracy, name=kind, mode="lines+markers", line_color=MASK_COLOURS.get(kind),
                        text=hidden_state_labels(len(layers)), hovertemplate=f"{kind}, after layer %{{text}}: %{{y:.3f}}<extra></extra>")
    fig.add_scatter(x=layers, y=[data.baseline] * len(layers), name="majority sense", mode="lines",
                    line=dict(color="#6b7280", dash="dash"), hovertemplate="always the majority sense: %{y:.3f}<extra></extra>")
    what = f"all {len(probe.words)} words" if word is None else f"'{html.escape(word.strip())}'"
    fig.update_layout(
        title=f"sense probe, {what} ({data.count} sentences): leave-one-out 1-nearest-neighbour accuracy",
        xaxis=_hidden_state_axis(len(layers)),
        yaxis=dict(title="accuracy", range=[0, 1.02]),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def corpus_projection(projections: Sequence[Projection]) -> go.Figure:
    """One word's corpus occurrences on two principal components, per mask, coloured by sense; ★ your sentence."""
    fig = make_subplots(rows=1, cols=len(projections), subplot_titles=[f"{p.mask} (PCA, after {hidden_state_name(p.layer)})" for p in projections])
    senses = list(dict.fromkeys(s for p in projections for s in p.senses))
    colour = {s: SENSE_COLOURS[i % len(SENSE_COLOURS)] for i, s in enumerate(senses)}
    for c, p in enumerate(projections, start=1):
        n = len(p.senses)
        for sense in senses:
            rows = [i for i in range(n) if p.senses[i] == sense]
            fig.add_scatter(
                x=p.coords[rows, 0], y=p.coords[rows, 1], mode="markers", name=str(sense if sense is not None else "unlabelled"),
                legendgroup=str(sense), showlegend=c == 1, marker=dict(size=9, color=colour[sense], opacity=0.8),
                customdata=[html.escape(p.sentences[i]) for i in rows], hovertemplate="%{customdata}<extra></extra>", row=1, col=c,
            )
        if p.query is not None:
            fig.add_scatter(
                x=p.coords[n:, 0], y=p.coords[n:, 1], mode="markers", name="your sentence", legendgroup="query",
                showlegend=c == 1, marker=dict(size=18, symbol="star", color="#111827"),
                customdata=[html.escape(p.query)], hovertemplate="%{customdata}<extra></extra>", row=1, col=c,
            )
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.12))
    return fig


def word_context_by_layer(curves: dict[str, np.ndarray], word: str) -> go.Figure:
    """For models whose vectors cannot be compared with each other (different hidden sizes): in each model, how
    far the words after `word` move it, 1 − cosine(bidirectional, causal) after every layer. Each curve is the
    model's own, so the two can be read against each other."""
    fig = go.Figure()
    for n, (name, values) in enumerate(curves.items()):
        layers = list(range(len(values)))
        fig.add_scatter(x=layers, y=values, name=html.escape(name), mode="lines+markers", line_dash=("solid", "dot")[n % 2],
                        line_color=("#2563eb", "#ea580c")[n % 2], text=hidden_state_labels(len(layers)),
                        hovertemplate=html.escape(name) + ", after layer %{text}: %{y:.4f}<extra></extra>")
    deepest = max((len(v) for v in curves.values()), default=1)
    top = max([float(np.max(v)) for v in curves.values() if len(v)] + [1e-3])
    fig.update_layout(
        title=f"how far the words after '{html.escape(word)}' move it in each model: 1 − cosine(bidirectional, causal)",
        xaxis=_hidden_state_axis(deepest),
        yaxis=dict(title="1 − cosine", range=[0, top * 1.1]),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def word_cosine_by_layer(cosines: np.ndarray, word: str, names: tuple[str, str], kind: str) -> go.Figure:
    """Cosine between two models' vectors of one word, layer by layer (`compare.compare_word`)."""
    layers = list(range(len(cosines)))
    fig = go.Figure(
        go.Scatter(
            x=layers, y=cosines, mode="lines+markers", line_color=MASK_COLOURS.get(kind, "#2563eb"),
            text=hidden_state_labels(len(layers)), hovertemplate="after layer %{text}: cosine %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"cosine of '{html.escape(word)}' in {html.escape(names[0])} vs {html.escape(names[1])} ({kind}), layer by layer",
        xaxis=_hidden_state_axis(len(layers)),
        yaxis=dict(title="cosine similarity", range=[min(-0.05, float(np.min(cosines)) - 0.05), 1.02]),
        height=340,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


# --- fitting a figure to the screen, and saying it in words ------------------------------------------------------

TITLE_CHARS = 40
"""A chart title longer than this wraps at word boundaries: plotly never wraps a title, and a phone's chart is
~350 px wide, ~40 characters of a 17-px title."""
TITLE_GAP = 8
"""Pixels between a title's lowest line and what it stands above."""


def fit_title(fig: go.Figure, chars: int = TITLE_CHARS) -> go.Figure:
    """Keep the title above the data, on any screen: wrap it, anchor its bottom to the top of the plot area
    (plotly's default centres it in the top margin, so a second line, or a descender, lands on the data), let
    it push the top margin, and lift it over subplot titles standing at the top. Call it after any change of
    font size."""
    text = fig.layout.title.text
    if not text:
        return fig
    if "<br>" not in text and len(text) > chars:
        text = "<br>".join(textwrap.wrap(text, chars, break_long_words=False))
    base = fig.layout.font.size or 12
    above = [a for a in fig.layout.annotations
             if (a.yref or "paper") == "paper" and a.y is not None and a.y >= 0.98 and (a.yanchor or "auto") in ("bottom", "auto")]
    lift = max(((a.font.size or base) * 1.3 * (1 + str(a.text or "").count("<br>")) for a in above), default=0.0)
    # plotly anchors a title's first line at `y`, whatever yanchor says: the lines below it need room of their own
    size = fig.layout.title.font.size or base * 1.4
    below = text.count("<br>") * size * 1.3
    fig.update_layout(title=dict(text=text, automargin=True, yref="paper", y=1, yanchor="bottom",
                                 pad=dict(b=TITLE_GAP + int(lift + below))))
    return fig


_AXIS = re.compile(r"([xy])axis(\d*)")


def panels(fig: go.Figure) -> list[go.Figure]:
    """A figure whose subplots stand in several columns, as one figure per column (its rows kept), so a page can
    set them in columns that stack on a narrow screen. Each keeps its traces, axes and subplot titles; the one
    subplot title at a panel's top becomes its title; the whole figure's title is the caller's to draw over the
    row. A figure in one column comes back alone, unchanged."""
    layout = fig.layout.to_plotly_json()
    xaxes = {k: v for k, v in layout.items() if _AXIS.fullmatch(k) and k[0] == "x"}
    columns = sorted({tuple(v.get("domain", (0.0, 1.0))) for v in xaxes.values()})
    if len(columns) < 2:
        return [fig]
    out = []
    for low, high in columns:
        xs = [k for k, v in xaxes.items() if tuple(v.get("domain", (0.0, 1.0))) == (low, high)]
        x_ids = {"x" + _AXIS.fullmatch(k).group(2) for k in xs}
        y_keys = {"yaxis" + xaxes[k].get("anchor", "y")[1:] for k in xs}
        kept = {"x" + _AXIS.fullmatch(k).group(2) for k in xs} | {"y" + _AXIS.fullmatch(k).group(2) for k in y_keys}
        part = {k: v for k, v in layout.items() if not _AXIS.fullmatch(k) and k not in ("annotations", "title")}
        for k in xs + sorted(y_keys):
            axis = dict(layout.get(k, {}))
            if k in xs:
                axis["domain"] = [0.0, 1.0]
            for link in ("matches", "scaleanchor", "overlaying"):
                if axis.get(link) and axis[link] not in kept:
                    del axis[link]
            part[k] = axis
        notes = [{**a, "x": (a.get("x", 0.5) - low) / ((high - low) or 1.0)} for a in layout.get("annotations", ())
                 if a.get("xref", "paper") == "paper" and low - 1e-6 <= a.get("x", 0.5) <= high + 1e-6]
        top = [a for a in notes if a.get("yref", "paper") == "paper" and a.get("y", 0) >= 0.98]
        if len(top) == 1:
            notes.remove(top[0])
            part["title"] = {"text": top[0].get("text", "")}
        part["annotations"] = notes
        traces = [t.to_plotly_json() for t in fig.data if (t.xaxis or "x") in x_ids]
        out.append(go.Figure(data=traces, layout=part))
    return out


def _plain(text: str | None) -> str:
    """A plotly label as text: line breaks become spaces, entities their characters."""
    return html.unescape(re.sub(r"<br\s*/?>", " ", str(text or ""))).strip()


def _label(axis, value) -> str:
    """How an axis names a value: its tick text where it has one (a token, 'embeddings'), else the value."""
    values, texts = axis.tickvals, axis.ticktext
    if values is not None and texts is not None:
        for v, t in zip(values, texts):
            if v == value:
                return _plain(t)
    return _plain(value)


def _axes(fig: go.Figure, trace) -> tuple:
    x = fig.layout[("xaxis" + (trace.xaxis or "x")[1:])]
    y = fig.layout[("yaxis" + (trace.yaxis or "y")[1:])]
    return x, y


def _numeric(values) -> bool:
    """Whether a trace's coordinates are numbers (a category axis holds names)."""
    if values is None:
        return False
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def describe(fig: go.Figure) -> str:
    """The chart in words, for a screen reader and for anyone who cannot tell its colours apart: its title, and
    for each trace what it holds and where its extremes are (measured from the figure's own data)."""
    said = [f"Chart: {_plain(fig.layout.title.text)}." if fig.layout.title.text else "Chart."]
    subtitles = [_plain(a.text) for a in fig.layout.annotations if a.text]
    if subtitles:
        said.append("Panels: " + "; ".join(subtitles) + ".")
    for trace in fig.data:
        xaxis, yaxis = _axes(fig, trace)
        xname, yname = _plain(xaxis.title.text) or "x", _plain(yaxis.title.text) or "y"
        name = f"{_plain(trace.name)}: " if trace.name else ""
        if trace.type == "heatmap" and trace.z is not None:
            z = np.asarray(trace.z, dtype=np.float64)
            if not z.size or not np.isfinite(z).any():
                continue
            rows = list(trace.y) if trace.y is not None else list(range(z.shape[0]))
            cols = list(trace.x) if trace.x is not None else list(range(z.shape[1]))
            r, c = np.unravel_index(np.nanargmax(z), z.shape)
            said.append(f"{name}a grid of {z.shape[0]} × {z.shape[1]} values ({yname} down, {xname} across) from "
                        f"{np.nanmin(z):.3g} to {np.nanmax(z):.3g}; the largest at {yname} {_label(yaxis, rows[r])}, "
                        f"{xname} {_label(xaxis, cols[c])}.")
        elif trace.type in ("bar", "scatter"):
            horizontal = trace.orientation == "h" or (not _numeric(trace.y) and _numeric(trace.x))  # values along x
            if not _numeric(trace.x if horizontal else trace.y):
                continue
            values = np.asarray(trace.x if horizontal else trace.y, dtype=np.float64)
            where = list(trace.y if horizontal else trace.x) if (trace.y if horizontal else trace.x) is not None else list(range(len(values)))
            axis, vname = (yaxis, xname) if horizontal else (xaxis, yname)
            if not values.size or not np.isfinite(values).any():
                continue
            hi, lo = int(np.nanargmax(values)), int(np.nanargmin(values))
            kind = "bars" if trace.type == "bar" else ("points" if trace.mode and "lines" not in trace.mode else "a line")
            said.append(f"{name}{kind} over {len(values)} places, {vname} from {values[lo]:.3g} (at {_label(axis, where[lo])}) "
                        f"to {values[hi]:.3g} (at {_label(axis, where[hi])}).")
    return " ".join(said)


# --- families: how a score is made, what ELECTRA and GPT-2 predict, BERT beside GPT ---------------------------


TERM_COLOURS = {"content→content": "#0072B2", "content→position": "#E69F00", "position→content": "#CC79A7"}


def score_terms(tokens: Sequence[Token], steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """DeBERTa's three terms of each key's score (already scaled, as the module divides each), stacked, and their
    sum: content→content (q·k, as in BERT), content→position (the query against the key's distance),
    position→content (the key against the query's distance)."""
    tokens, w = _windowed(tokens, window)
    x = _positions(tokens)
    fig = go.Figure()
    for name, values in (steps.terms or {}).items():
        fig.add_bar(name=name, x=x, y=np.asarray(values)[w] * steps.scale, marker_color=TERM_COLOURS.get(name),
                    hovertemplate=name + " for key %{x}: %{y:.3f}<extra></extra>")
    fig.add_scatter(name="score (their sum)", x=x, y=steps.scaled[w], mode="markers", marker=dict(symbol="line-ew-open", size=18,
                    color="#111827", line=dict(width=3)), hovertemplate="score of key %{x}: %{y:.3f}<extra></extra>")
    _token_axis(fig, tokens, "x")
    fig.update_layout(barmode="relative", title=f"the score of each key for “{html.escape(steps.tokens[steps.query])}”: three terms",
                      height=380, yaxis_title="scaled score", margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def rotation_chart(tokens: Sequence[Token], steps: HeadSteps, window: Window | None = None) -> go.Figure:
    """What rotary positions do to one query's scores: q·k with the vectors as projected, and after each is
    rotated by its position (what the model uses). The difference is the position's whole effect."""
    tokens, w = _windowed(tokens, window)
    x = _positions(tokens)
    before = (steps.k @ steps.q)[w] * steps.scale
    fig = go.Figure()
    fig.add_bar(name="q·k before rotation", x=x, y=before, marker_color="#9ca3af",
                hovertemplate="key %{x}: %{y:.3f}<extra>before</extra>")
    fig.add_bar(name="after rotation (used)", x=x, y=steps.scaled[w], marker_color="#0072B2",
                hovertemplate="key %{x}: %{y:.3f}<extra>after</extra>")
    _token_axis(fig, tokens, "x")
    fig.update_layout(barmode="group", title=f"scaled scores for “{html.escape(steps.tokens[steps.query])}”, before and after the rotation",
                      height=360, yaxis_title="q·k / √d_head", margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def replaced_bars(replaced: Sequence[dict], title: str = "P(replaced) per token, ELECTRA's discriminator") -> go.Figure:
    """ELECTRA's replaced-token detection: for every ordinary token, the probability the discriminator gives it of
    having been put there by the generator (a wrong word lights up)."""
    x = [r["position"] for r in replaced]
    probs = [r["prob"] for r in replaced]
    fig = go.Figure(go.Bar(x=x, y=probs, marker=dict(color=probs, colorscale=SEQUENTIAL, cmin=0, cmax=1),
                           text=[f"{p:.2f}" for p in probs], textposition="outside",
                           hovertemplate="%{customdata}: P(replaced) %{y:.3f}<extra></extra>",
                           customdata=[html.escape(r["token"]) for r in replaced]))
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=[html.escape(r["token"]) for r in replaced], tickangle=-60)
    fig.add_hline(y=0.5, line_dash="dot", line_color="#6b7280", annotation_text="0.5", annotation_position="right")
    fig.update_layout(title=title, height=360, yaxis=dict(range=[0, 1.12], title="P(replaced)"), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def sense_curves(curves: dict[str, np.ndarray], title: str) -> go.Figure:
    """A word's cosine in two sentences, layer by layer, one line per model (or mask): models with different
    numbers of layers each keep their own (layer 0 = the embeddings)."""
    fig = go.Figure()
    # drawn last first, so a line that lies on a later one (BERT under a causal mask on GPT's, both at 1.0 where
    # the words before are the same) stays visible; the legend keeps the given order
    for rank, colour, (name, values) in reversed(list(zip(range(len(curves)), SERIES_COLOURS, curves.items()))):
        dashed = "causal" in name and "GPT" not in name
        fig.add_scatter(x=list(range(len(values))), y=values, mode="lines+markers", name=html.escape(name), legendrank=rank,
                        line=dict(color=colour, dash="dash" if dashed else "solid", width=3 if dashed else 2),
                        hovertemplate=html.escape(name) + ", after layer %{x}: %{y:.3f}<extra></extra>")
    fig.update_layout(title=title, height=380, xaxis_title="layer (0 = embeddings)", yaxis_title="cosine",
                      margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(dtick=1)
    return fig


def probe_by_order(curves: dict[str, np.ndarray], baseline: float, title: str) -> go.Figure:
    """The sense probe's accuracy by layer, one line per (model, mask, which half of the corpus), against always
    guessing the more common sense."""
    fig = go.Figure()
    for colour, (name, values) in zip(SERIES_COLOURS, curves.items()):
        fig.add_scatter(x=list(range(len(values))), y=values, mode="lines+markers", name=html.escape(name), line=dict(color=colour),
                        hovertemplate=html.escape(name) + ", after layer %{x}: %{y:.2f}<extra></extra>")
    fig.add_hline(y=baseline, line_dash="dot", line_color="#6b7280", annotation_text="always the more common sense",
                  annotation_position="bottom right")
    fig.update_layout(title=title, height=400, xaxis_title="layer (0 = embeddings)", yaxis=dict(range=[0, 1.05], title="accuracy"),
                      margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(dtick=1)
    return fig
