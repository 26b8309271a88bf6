"""bertlab.show in notebooks: each view carries the page's figure built from the analysis, renders with no
network, and docs/notebook.ipynb runs headless (nbclient + ipykernel) with its figures in the outputs."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import bertlab
from bertlab import show
from bertlab.show import PLOTLY_MIME

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"
TEXT = "the quick brown [MASK] jumps over the lazy dog ."
REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)
"""A tag that fetches a script, style, image or page from another host: a view that needs the network."""


@pytest.fixture(scope="module")
def a(tiny_bert):
    return bertlab.analyze(tiny_bert, TEXT, "i have a pen .")


def heatmaps(chart: show.Chart) -> list[np.ndarray]:
    return [np.asarray(t.z, dtype=float) for t in chart.figure.data if t.type == "heatmap"]


def test_charts_carry_the_analysis_as_the_plotly_mime_type(a):
    assert bertlab.show is show, "bertlab.show.attention(...) works after a plain `import bertlab`"
    chart = show.attention(a, layer=1, head=2, mask="causal")
    np.testing.assert_allclose(heatmaps(chart)[0], a.causal.attentions[1, 2], atol=1e-6)
    bundle = chart._repr_mimebundle_()
    assert bundle[PLOTLY_MIME]["data"][0]["type"] == "heatmap"
    assert bundle[PLOTLY_MIME]["config"]["toImageButtonOptions"]["format"] == "svg"

    mask_views = show.masks(a, layer=1, head=2)
    first, second = heatmaps(mask_views[0]), heatmaps(mask_views[1])
    np.testing.assert_array_equal(first[0], a.bidirectional.allowed)
    np.testing.assert_array_equal(first[1], a.causal.allowed)
    assert np.all(np.triu(first[1], 1) == 0) and np.all(first[0] == 1)
    np.testing.assert_allclose(second[1], a.causal.attentions[1, 2], atol=1e-6)
    assert len(mask_views) == 3  # masks, one head under each, divergence

    bars = show.mlm(a)
    assert len(bars) == len(a.mask_positions) == 1
    probs = [p.prob for p in a.predictions(a.mask_positions[0])["bidirectional"]]
    np.testing.assert_allclose(bars[0].figure.data[0].x, probs)

    parts = show.embeddings(a)
    assert len(parts) == 2 and heatmaps(parts[1])


def test_word_sense_views(tiny_bert):
    s = bertlab.senses(tiny_bert, "bank", ["i went to the bank to deposit money .", "i went to the bank to catch some fish ."])
    views = show.senses(s)
    bi, causal = heatmaps(views[0])
    np.testing.assert_allclose(bi, s.similarity["bidirectional"][-1], atol=1e-6)
    np.testing.assert_allclose(causal, s.similarity["causal"][-1], atol=1e-6)
    np.testing.assert_allclose(views[1].figure.data[1].y, s.similarity["causal"][:, 0, 1], atol=1e-6)


def test_html_views_are_self_contained(a, monkeypatch):
    for frame in (show.head_view(a, layer=1), show.model_view(a)):
        assert "bertlabAttention(" in frame.html and "jQuery" in frame.html, "bertviz's view with its packed weights"
        assert not REMOTE.search(frame.html)
        outer = frame._repr_html_()
        assert outer.startswith("<iframe srcdoc=") and "<script" not in outer, "scripts stay inside the iframe"
    chips = show.tokens(a)
    assert all(f">{t.text}<sub>{t.id}</sub>" in chips.html for t in a.tokens if t.text.isalpha())

    monkeypatch.setattr(show, "_plotly_js_sent", False)
    first = show.attention(a)._repr_html_()
    later = show.attention(a)._repr_html_()
    assert len(first) > 1_000_000 and "plotly.js" in first, "the first figure brings plotly.js inline"
    assert len(later) < 100_000 and "Plotly.newPlot" in later
    assert not REMOTE.search(first) and not REMOTE.search(later)


def test_views_say_what_is_wrong(a, tiny_encoder):
    with pytest.raises(bertlab.InputError, match="layer"):
        show.attention(a, layer=a.model.layers)
    with pytest.raises(bertlab.MissingHeadError, match="masked-LM"):
        show.mlm(bertlab.analyze(tiny_encoder, TEXT))


def test_notebook_tour_runs_headless_with_its_figures(monkeypatch):
    """The tour as a reader runs it: a kernel started in docs/ (the notebook finds the checkout itself), offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [f"{out.ename}: {out.evalue}" for out in outputs if out.output_type == "error"]
    assert not errors, errors
    bundles = [out.data for out in outputs if out.output_type in ("display_data", "execute_result")]
    plotly = [b[PLOTLY_MIME] for b in bundles if PLOTLY_MIME in b]
    html = [b["text/html"] for b in bundles if "text/html" in b]
    kinds = {trace["type"] for fig in plotly for trace in fig["data"]}
    assert len(plotly) >= 9 and {"heatmap", "bar", "scatter"} <= kinds
    assert sum("bertlabAttention(" in h for h in html) == 2, "bertviz's head view and model view"
    assert any('class="chips"' in unescape(h) for h in html), "the token chips (in an iframe's srcdoc)"
    assert not [h[:200] for h in html if REMOTE.search(h)], "an output loads something from the network"
    printed = "".join(out.text for out in outputs if out.output_type == "stream")
    assert "has no masked-LM head" in printed
