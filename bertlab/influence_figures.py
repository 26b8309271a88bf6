"""Figure builders for the influence panel and the head atlas: pure functions from `bertlab.influence` and
`bertlab.atlas` results to plotly figures (no model calls, no Streamlit).

Token axes are numeric positions with the pieces as tick text (as in bertlab.figures), so a repeated word keeps
its own bar.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .atlas import BEHAVIOURS, NAMES as BEHAVIOUR_NAMES, STATS, Atlas
from .influence import METHODS, NAMES, Influence

COLOURS = {
    "attention": "#2563eb", "rollout": "#0891b2", "norm": "#059669", "value_zeroing": "#65a30d",
    "occlusion": "#ea580c", "integrated_gradients": "#7c3aed",
}
BEHAVIOUR_COLOURS = {
    "cls": "#2563eb", "sep": "#dc2626", "punct": "#ca8a04", "prev": "#059669", "next": "#7c3aed", "self": "#db2777",
    "broad": "#6b7280",
}
LABELS = 40
"""At most this many token labels on an axis; past it every n-th, with its position."""
LABELLED_HEADS = 160
"""Up to this many heads (BERT-base has 144) the map writes each head's name beside its point; past it, hover only."""


def _token_axis(fig: go.Figure, tokens: Sequence[str], positions: Sequence[int], row: int | None = None, col: int | None = None) -> None:
    every = max(1, -(-len(tokens) // LABELS))
    shown = list(range(0, len(tokens), every))
    text = [html.escape(tokens[i]) if every == 1 else f"{html.escape(tokens[i])} · {positions[i]}" for i in shown]
    fig.update_xaxes(tickmode="array", tickvals=[positions[i] for i in shown], ticktext=text, tickangle=-60, row=row, col=col)


def _window(count: int, window: slice | None) -> list[int]:
    return list(range(count))[window or slice(None)]


def influence_bars(result: Influence, methods: Sequence[str] = METHODS, window: slice | None = None,
                   layer: int | None = None) -> go.Figure:
    """One strip of bars per measure over the same tokens, aligned, each normalized to sum 1: where they agree the
    tall bars line up. With `layer`, the layered measures (attention, norm, value zeroing) at that layer."""
    positions = _window(len(result.tokens), window)
    fig = make_subplots(rows=len(methods), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[_title(result, m, layer) for m in methods])
    for row, method in enumerate(methods, start=1):
        values = result.methods[method] if layer is None else result.layers[method][layer]
        values = np.asarray(values, dtype=np.float64)[positions]
        hover = [f"{html.escape(result.tokens[p])} [{p}]" for p in positions]
        fig.add_bar(x=positions, y=values, marker_color=COLOURS[method], showlegend=False, customdata=hover,
                    hovertemplate="%{customdata}: %{y:.3f}<extra>" + NAMES[method] + "</extra>", row=row, col=1)
        fig.update_yaxes(range=[0, max(float(values.max(initial=0)), 1e-9) * 1.1], nticks=3, row=row, col=1)
    _token_axis(fig, result.tokens, list(range(len(result.tokens))), row=len(methods), col=1)
    # P itself, marked on every strip: what the bars are about
    if result.position in positions:
        for row in range(1, len(methods) + 1):
            fig.add_vline(x=result.position, line=dict(color="#9ca3af", width=1, dash="dot"), layer="below", row=row, col=1)
    fig.update_annotations(font_size=12, xanchor="left", x=0)
    fig.update_layout(height=90 + 105 * len(methods), margin=dict(l=10, r=10, t=40, b=10), bargap=0.15)
    return fig


def _title(result: Influence, method: str, layer: int | None) -> str:
    if layer is not None:
        return f"{NAMES[method]}, layer {layer}"
    if method in ("occlusion", "integrated_gradients"):
        what = f"log P(“{html.escape(result.target)}”)" if result.target else "P's last hidden state"
        return f"{NAMES[method]}: {what}"
    if method == "rollout":
        return "rollout through every layer"
    return f"{NAMES[method]}, last layer"


SHORT = {"attention": "attention", "rollout": "rollout", "norm": "norm", "value_zeroing": "zeroing", "occlusion": "occlusion",
         "integrated_gradients": "IG"}
"""Axis labels for the Spearman matrix: six of them fit a phone's width."""


def spearman_heatmap(result: Influence) -> go.Figure:
    """Spearman's ρ of every pair of measures over the tokens compared, with the value in each cell."""
    names = [SHORT[m] for m in METHODS]
    z = np.array([[np.nan if result.spearman[a][b] is None else result.spearman[a][b] for b in METHODS] for a in METHODS])
    text = [["–" if np.isnan(v) else f"{v:+.2f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="RdBu", zmin=-1, zmax=1, zmid=0,
        colorbar=dict(thickness=12, title="ρ"), xgap=2, ygap=2,
        hovertemplate="%{y} vs %{x}: ρ = %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=f"Spearman's ρ over {len(result.compared)} tokens", height=430, margin=dict(l=10, r=10, t=50, b=10),
                      yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-35))
    return fig


def atlas_map(atlas: Atlas, colour: str = "layer", selected: tuple[int, int] | None = None) -> go.Figure:
    """Every head on the 2-D map of their Jensen-Shannon distances (classical MDS), coloured by layer or by its
    dominant behaviour; heads with similar attention lie close together. Each point's customdata is [head index
    (layer-major), hover text], so a selection names its head whatever the colouring."""
    heads = atlas.layers * atlas.heads
    labels = [f"{i // atlas.heads}.{i % atlas.heads}" for i in range(heads)]
    dominant = atlas.dominant()
    hover = [
        f"head {labels[i]}: {BEHAVIOUR_NAMES[dominant[i]]}<br>" + ", ".join(
            f"{BEHAVIOUR_NAMES[b]} {atlas.stats[i, s]:.2f}" for s, b in enumerate(BEHAVIOURS)) + f"<br>entropy {atlas.stats[i, -1]:.2f}"
        for i in range(heads)
    ]
    x, y = atlas.coords[:, 0], atlas.coords[:, 1]
    mode = "markers+text" if heads <= LABELLED_HEADS else "markers"  # BERT-large's 384 labels would be a grey blot
    fig = go.Figure()
    marker = dict(size=13, line=dict(width=1, color="#ffffff"))
    if colour == "layer":
        fig.add_scatter(x=x, y=y, mode=mode, text=labels, textposition="top center", textfont=dict(size=9),
                        customdata=[[i, hover[i]] for i in range(heads)], hovertemplate="%{customdata[1]}<extra></extra>",
                        showlegend=False,
                        marker=dict(**marker, color=[i // atlas.heads for i in range(heads)], colorscale="Viridis",
                                    cmin=0, cmax=max(atlas.layers - 1, 1), colorbar=dict(title="layer", thickness=12)))
    else:
        for behaviour in (*BEHAVIOURS, "broad"):
            chosen = [i for i in range(heads) if dominant[i] == behaviour]
            if chosen:
                fig.add_scatter(x=x[chosen], y=y[chosen], mode=mode, text=[labels[i] for i in chosen],
                                textposition="top center", textfont=dict(size=9), name=BEHAVIOUR_NAMES[behaviour],
                                customdata=[[i, hover[i]] for i in chosen], hovertemplate="%{customdata[1]}<extra></extra>",
                                marker=dict(**marker, color=BEHAVIOUR_COLOURS[behaviour]))
    if selected is not None:
        i = selected[0] * atlas.heads + selected[1]
        fig.add_scatter(x=[x[i]], y=[y[i]], mode="markers", name=f"head {labels[i]}", hoverinfo="skip",
                        marker=dict(size=24, symbol="circle-open", line=dict(width=3, color="#111827")), showlegend=False)
    fig.update_layout(
        title=f"every head over {len(atlas.sentences):,} sentences ({atlas.mask})<br>"
              "<sup>close together = similar attention</sup>",
        height=560, margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.08),
        xaxis=dict(title="MDS 1", zeroline=False), yaxis=dict(title="MDS 2", zeroline=False, scaleanchor="x"),
        clickmode="event+select", dragmode="pan",
    )
    return fig


def head_behaviour(atlas: Atlas, layer: int, head: int) -> go.Figure:
    """One head's average attention mass per behaviour, beside the mean over every head of the model."""
    i = atlas.index(layer, head)
    names = [BEHAVIOUR_NAMES[b] for b in BEHAVIOURS]
    fig = go.Figure()
    fig.add_bar(x=atlas.stats[i, : len(BEHAVIOURS)], y=names, orientation="h", name=f"head {layer}.{head}",
                marker_color=[BEHAVIOUR_COLOURS[b] for b in BEHAVIOURS], hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    fig.add_scatter(x=atlas.stats[:, : len(BEHAVIOURS)].mean(0), y=names, mode="markers", name="mean of all heads",
                    marker=dict(symbol="line-ns", size=18, line=dict(width=3, color="#111827")),
                    hovertemplate="all heads: %{x:.3f}<extra></extra>")
    fig.update_layout(
        title=f"head {layer}.{head}: where its attention goes",
        xaxis=dict(range=[0, 1], title="mass"), yaxis=dict(autorange="reversed"), height=330,
        margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25),
    )
    return fig


def behaviour_grid(atlas: Atlas, stat: str) -> go.Figure:
    """A layer × head grid of one statistic (Clark et al.'s figures, for any checkpoint)."""
    z = atlas.stat(stat)
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(atlas.heads)), y=list(range(atlas.layers)), colorscale="Blues", zmin=0,
        zmax=1 if stat != "entropy" else None, xgap=2, ygap=2, colorbar=dict(thickness=12),
        hovertemplate="head %{y}.%{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=f"{BEHAVIOUR_NAMES[stat]} per head, averaged over every token", height=140 + 28 * atlas.layers,
                      margin=dict(l=10, r=10, t=50, b=10), xaxis=dict(title="head", dtick=1),
                      yaxis=dict(title="layer", dtick=1, autorange="reversed"))
    return fig


__all__ = ["atlas_map", "behaviour_grid", "head_behaviour", "influence_bars", "spearman_heatmap"]
