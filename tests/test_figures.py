"""Figure builders: pure functions of analysis data; labels stay distinct and stay text."""

from __future__ import annotations

import bertlab
from bertlab import attention_views, figures
from bertlab.analysis import Prediction


def test_repeated_tokens_keep_their_own_rows_and_columns(tiny_bert):
    result = bertlab.analyze(tiny_bert, "the cat and the dog")
    fig = figures.attention_heatmap(result.tokens, result.bidirectional.attentions[0, 0])
    assert list(fig.layout.xaxis.tickvals) == list(range(len(result.tokens)))
    assert list(fig.layout.xaxis.ticktext).count("the") == 2
    assert fig.data[0].z.shape == (len(result.tokens), len(result.tokens))


def test_prediction_labels_are_categories_and_escaped():
    preds = [Prediction("7", 1, 0.5), Prediction("<b>", 2, 0.3)]
    fig = figures.prediction_bars({"bidirectional": preds, "causal": preds}, "t")
    assert fig.layout.yaxis.type == "category" and fig.layout.yaxis2.type == "category"
    assert "1. 7" in fig.data[0].y and "2. &lt;b&gt;" in fig.data[0].y


def test_every_figure_builds_from_one_analysis(tiny_bert, minilm):
    result = bertlab.analyze(tiny_bert, "the quick [MASK] fox.", "a pen")
    run = result.bidirectional
    assert figures.embeddings_heatmaps(result.tokens, result.embeddings).data
    assert figures.embedding_norms(result.tokens, result.embeddings).data
    assert figures.mask_matrix(result.tokens, result.causal.allowed, "causal").data
    for stat in bertlab.HEAD_STATS:
        assert figures.head_stat_grid(run, stat).data[0].z.shape == (2, 4)
    assert figures.rollout_heatmap(result.tokens, run, 1).data
    assert figures.divergence_heatmap(result.tokens, result.divergence()).data
    each = bertlab.mask_each_token(tiny_bert, result.encoding)
    assert len(figures.mask_each_chart(result.tokens, each).data[0].y) == len(each.positions)
    lens = bertlab.logit_lens(tiny_bert, result, 3)
    assert len(figures.logit_lens_chart(lens, "x").data[0].y) == 3
    assert figures.nsp_gauge(result.nsp).data
    sense = bertlab.senses(minilm, "bank", ["the bank of the river.", "the bank lent money."])
    assert figures.similarity_heatmap(sense, "causal", 6).data
    assert figures.similarity_by_layer(sense, 0, 1).data
    assert len(figures.projection_scatter(sense, 6).data) == 2


def test_bertviz_html_needs_no_network(minilm):
    result = bertlab.analyze(minilm, "the cat <script>alert(1)</script>")
    for html in (attention_views.head_view(result.tokens, result.bidirectional.attentions),
                 attention_views.model_view(result.tokens, result.bidirectional.attentions)):
        assert "<script src=" not in html
        assert "window.requirejs" in html and "d3" in html
        assert "<script>alert(1)</script>" not in html
