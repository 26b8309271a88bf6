"""The app's views inline in a notebook (Jupyter, VS Code, Colab), from the same figure builders the pages use.

    >>> from bertlab import analyze, load_model, show
    >>> a = analyze(load_model("minilm"), "The bank raised its rates.")
    >>> show.attention(a, layer=2, head=5)           # the Attention page's heatmap
    >>> show.head_view(a, layer=2)                   # bertviz's head view, offline

Each function returns an object the notebook renders by itself; nothing touches the network:
- plotly figures (`Chart`) carry the plotly mime type, which JupyterLab, Notebook 7 and VS Code draw
  with the plotly.js they bundle, and an HTML fallback (Colab, other frontends) with plotly.js inline:
  in the first figure of the kernel only (later ones reuse its `window.Plotly`), in every figure on
  Colab, where each output is its own page. `.figure` is the plotly Figure (to restyle or save).
- bertviz's views and the token chips (`Frame`) are self-contained HTML in an iframe (`srcdoc`): jQuery
  and d3 inlined as in the app (`attention_views`), and bertviz's `require` shim kept away from the
  notebook's own page. `.html` is the HTML itself (to save as a file).
"""

from __future__ import annotations

import html as html_lib
import json
import sys
from dataclasses import dataclass, field
from typing import Sequence

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from . import attention_views, figures
from .analysis import Analysis
from .errors import InputError, MissingHeadError, NoMaskError
from .masks import MASK_TYPES
from .nsp import NextSentence
from .senses import Senses
from .tokens import Encoding

PLOTLY_MIME = "application/vnd.plotly.v1+json"
CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "bertlab"}}
"""Plotly's camera button saves SVG in notebooks: vector figures for papers."""

_plotly_js_sent = False


@dataclass
class Chart:
    """One plotly figure, drawn offline by whichever notebook frontend shows it."""

    figure: go.Figure

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        data = json.loads(pio.to_json(self.figure, validate=False))
        return {PLOTLY_MIME: {**data, "config": CONFIG}, "text/html": self._repr_html_(), "text/plain": self._text()}

    def _repr_html_(self) -> str:
        global _plotly_js_sent
        inline = not _plotly_js_sent or "google.colab" in sys.modules
        _plotly_js_sent = True
        return pio.to_html(self.figure, include_plotlyjs=inline, full_html=False, config=CONFIG)

    def _text(self) -> str:
        title = self.figure.layout.title.text or "figure"
        return f"<bertlab chart: {title}>"


@dataclass
class Frame:
    """Self-contained HTML (scripts inlined) in an iframe, so its scripts and styles stay out of the notebook's page."""

    html: str
    height: int
    title: str = ""

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" title="{html_lib.escape(self.title, quote=True)}" '
            f'style="width:100%;height:{self.height}px;border:none" sandbox="allow-scripts"></iframe>'
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/html": self._repr_html_(), "text/plain": f"<bertlab view: {self.title}>"}


@dataclass
class Views:
    """Several views shown one after the other (each its own notebook output)."""

    parts: list[Chart | Frame] = field(default_factory=list)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(*self.parts)

    def _repr_html_(self) -> str:
        return "\n".join(part._repr_html_() for part in self.parts)

    def __getitem__(self, i: int) -> Chart | Frame:
        return self.parts[i]

    def __len__(self) -> int:
        return len(self.parts)


def tokens(a: Analysis | Encoding) -> Frame:
    """WordPiece chips (the Tokenization page): segment colours, `##` pieces, specials, [UNK]; id and span on hover."""
    encoding = a.encoding if isinstance(a, Analysis) else a
    chips = figures.token_chips(encoding)
    rows = 1 + len(encoding.tokens) // 12
    return Frame(f"<!doctype html><meta charset='utf-8'><body style='margin:4px;font-family:sans-serif'>{chips}", 24 + 44 * rows, "tokens")


def embeddings(a: Analysis) -> Views:
    """Token + segment + position, their sum and LayerNorm (the Embeddings page): norms per token, then the vectors."""
    return Views([Chart(figures.embedding_norms(a.tokens, a.embeddings)), Chart(figures.embeddings_heatmaps(a.tokens, a.embeddings))])


def attention(a: Analysis, layer: int = 0, head: int = 0, mask: str = "bidirectional") -> Chart:
    """One head's attention as a heatmap (the Attention page), queries down, keys across."""
    _check(a, layer, head, mask)
    run = a.runs[mask]
    return Chart(figures.attention_heatmap(a.tokens, run.attention(layer, head), title=f"layer {layer}, head {head} ({mask})"))


def head_view(a: Analysis, layer: int = 0, mask: str = "bidirectional") -> Frame:
    """bertviz's head view of one layer, offline (jQuery and d3 inlined from the machine's packages)."""
    _check(a, layer, 0, mask)
    page = attention_views.head_view(a.tokens, a.runs[mask].attentions, layer=layer)
    return Frame(page, 120 + 23 * len(a.tokens), f"head view, layer {layer} ({mask})")


def model_view(a: Analysis, mask: str = "bidirectional") -> Frame:
    """bertviz's model view: every layer and head, offline."""
    _check(a, 0, 0, mask)
    page = attention_views.model_view(a.tokens, a.runs[mask].attentions)
    return Frame(page, 110 + 165 * a.model.layers, f"model view ({mask})")


def mlm(a: Analysis) -> Views:
    """Top-k guesses at every [MASK] under both masks (the Masked LM page)."""
    if "mlm" not in a.model.heads_available:
        raise MissingHeadError(f"'{a.model.name}' has no masked-LM head. {a.model.description}".strip())
    if not a.mask_positions:
        raise NoMaskError("The text holds no [MASK]: write [MASK] where BERT should guess a word.")
    return Views(
        [Chart(figures.prediction_bars(a.predictions(p), f"[MASK] at position {p}")) for p in a.mask_positions]
    )


def masks(a: Analysis, layer: int = 0, head: int = 0) -> Views:
    """Bidirectional and causal side by side (the Bidirectional vs causal page): the masks, one head under each,
    and how far the hidden states move apart."""
    _check(a, layer, head, "bidirectional")
    kinds = [k for k in MASK_TYPES if k in a.runs]
    runs = [a.runs[k] for k in kinds]
    parts = [
        Chart(side_by_side([figures.mask_matrix(a.tokens, r.allowed, r.kind) for r in runs], [f"{k} mask" for k in kinds])),
        Chart(
            side_by_side(
                [figures.attention_heatmap(a.tokens, r.attention(layer, head)) for r in runs],
                [f"layer {layer}, head {head} ({k})" for k in kinds],
            )
        ),
    ]
    if len(runs) == 2:
        parts.append(Chart(figures.divergence_heatmap(a.tokens, a.divergence())))
    return Views(parts)


def senses(s: Senses, layer: int | None = None, pair: tuple[int, int] = (0, 1)) -> Views:
    """A word across sentences (the Word sense page): cosine similarities under both masks at one layer
    (default: the last), side by side, and one pair of sentences layer by layer."""
    layer = s.layers - 1 if layer is None else layer
    if not 0 <= layer < s.layers:
        raise InputError(f"layer must be between 0 and {s.layers - 1} (0 is the embedding output).")
    i, j = pair
    if not (0 <= i < len(s.sentences) and 0 <= j < len(s.sentences)):
        raise InputError(f"pair must name two of the {len(s.sentences)} sentences, counting from 0.")
    kinds = list(s.similarity)
    return Views(
        [
            Chart(side_by_side([figures.similarity_heatmap(s, k, layer) for k in kinds], [f"{k}, layer {layer}" for k in kinds])),
            Chart(figures.similarity_by_layer(s, i, j)),
        ]
    )


def nsp(result: NextSentence) -> Views:
    """P(IsNext) for each second sentence (`bertlab.nsp.next_sentence`; the Next sentence page): one chart each."""
    charts = []
    for sentence, probability in zip(result.seconds, result.is_next):
        fig = figures.nsp_gauge(float(probability))
        fig.update_layout(title=html_lib.escape(sentence), margin=dict(t=40))
        charts.append(Chart(fig))
    return Views(charts)


def side_by_side(panels: Sequence[go.Figure], titles: Sequence[str]) -> go.Figure:
    """The pages' figures as columns of one figure: each panel's traces and axis settings (token tick labels,
    reversed query axis) moved into its own subplot, one colour bar kept."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(titles), horizontal_spacing=0.1)
    for col, panel in enumerate(panels, start=1):
        for trace in panel.data:
            fig.add_trace(trace, row=1, col=col)
        for axis, update in (("xaxis", fig.update_xaxes), ("yaxis", fig.update_yaxes)):
            settings = panel.layout[axis].to_plotly_json()
            for own in ("domain", "anchor", "matches", "scaleanchor"):
                settings.pop(own, None)
            update(settings, row=1, col=col)
    fig.update_traces(selector=dict(type="heatmap"), showscale=False)
    if fig.data and fig.data[-1].type == "heatmap" and panels[-1].data[-1].showscale is not False:
        fig.data[-1].showscale = True
    fig.update_layout(height=max((p.layout.height or 400) for p in panels), margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    return fig


def _check(a: Analysis, layer: int, head: int, mask: str) -> None:
    if mask not in a.runs:
        raise InputError(f"mask must be one of {', '.join(a.runs)}.")
    if not 0 <= layer < a.model.layers:
        raise InputError(f"layer must be between 0 and {a.model.layers - 1}.")
    if not 0 <= head < a.model.heads:
        raise InputError(f"head must be between 0 and {a.model.heads - 1}.")
