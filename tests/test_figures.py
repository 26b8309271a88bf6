"""Figure builders: pure functions of analysis data; labels stay distinct and stay text."""

from __future__ import annotations

import html
import json
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

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


EVIL = '<script>alert(1)</script> <img src=x onerror="alert(2)"> the "cat" & dog'
TAGS = ["<script>", "</script>", '<img src=x onerror="alert(2)">']


@pytest.fixture(scope="module")
def tags_kept_whole(tiny_bert_dir, tiny_bert) -> bertlab.LoadedModel:
    """The tiny BERT with a tokenizer that keeps HTML tags whole (added tokens, as any checkpoint may have), so
    the raw tags reach the views as token text. BERT's own WordPiece splits them into '<', 'script', '>'."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer.add_tokens(TAGS)
    return replace(tiny_bert, tokenizer=tokenizer)


class Elements(HTMLParser):
    """Start tags and their attributes, and the text inside each chip, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.chips: list[str] = []
        self._in_chip = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "span" and "chip" in dict(attrs).get("class", ""):
            self._in_chip = True
            self.chips.append("")
        elif tag == "sub":
            self._in_chip = False

    def handle_data(self, data):
        if self._in_chip:
            self.chips[-1] += data


def test_token_chips_show_html_in_the_text_as_text(tags_kept_whole):
    encoding = bertlab.encode(tags_kept_whole, EVIL)
    pieces = [t.text for t in encoding.tokens]
    assert set(TAGS) <= set(pieces), pieces  # the raw tags really are tokens here
    parsed = Elements()
    parsed.feed(figures.token_chips(encoding))
    assert {tag for tag, _ in parsed.tags} <= {"style", "div", "span", "sub"}
    assert parsed.chips == pieces
    chips = [attrs for tag, attrs in parsed.tags if tag == "span"]
    assert all(set(attrs) == {"class", "title"} for attrs in chips)
    for token, attrs in zip(encoding.tokens, chips):
        if token.end > token.start:  # the title quotes the characters the token came from, intact
            assert attrs["title"].endswith(f"“{EVIL[token.start:token.end]}”"), attrs["title"]


def test_sentences_shown_in_the_word_sense_plot_stay_text(tiny_bert):
    sentences = ["the <b>cat</b> sat.", '<img src=x onerror="alert(1)"> a cat']
    fig = figures.projection_scatter(bertlab.senses(tiny_bert, "cat", sentences), 1)
    for trace in fig.data:
        assert "<" not in "".join(trace.customdata)
        assert [html.unescape(c) for c in trace.customdata] == sentences


@pytest.mark.parametrize("view", ["head", "model"])
def test_bertviz_html_needs_no_network_and_keeps_tokens_inside_its_script(tags_kept_whole, view):
    tokens = bertlab.encode(tags_kept_whole, EVIL).tokens
    n = len(tokens)
    attentions = np.full((2, 4, n, n), 1.0 / n, dtype=np.float32)
    page = attention_views.head_view(tokens, attentions) if view == "head" else attention_views.model_view(tokens, attentions)
    assert "<script src=" not in page
    assert "window.requirejs" in page and "d3" in page
    parsed = Elements()
    parsed.feed(page)
    # A token '</script>' pasted raw into bertviz's script would end it there, and the token after it would be
    # parsed as an <img onerror> element of the page.
    assert not [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert json.dumps([t.text for t in tokens]).replace("</", "<\\/") in page


# --- long texts: a window of positions, thinned labels ----------------------------------------------------------

def _long(tiny_bert):
    """A text past the tiny model's 64 positions: 64 tokens, as a 512-token text is to BERT-base."""
    result = bertlab.analyze(tiny_bert, " ".join(["the cat sat on the mat."] * 12))
    assert len(result.tokens) == 64
    return result


def test_a_window_draws_its_positions_with_their_own_numbers(tiny_bert):
    result = _long(tiny_bert)
    tokens, w = result.tokens, slice(20, 30)
    weights = result.bidirectional.attention(1, 2)
    fig = figures.attention_heatmap(tokens, weights, window=w)
    assert list(fig.data[0].x) == list(fig.data[0].y) == list(range(20, 30))
    np.testing.assert_array_equal(fig.data[0].z, weights[20:30, 20:30].astype(np.float32))
    assert list(fig.layout.xaxis.tickvals) == list(range(20, 30))
    assert list(fig.layout.xaxis.ticktext) == [t.text for t in tokens[20:30]]
    assert "[25]" in fig.data[0].text[5][0]  # the hover names the real position, not the index in the window


def test_every_token_chart_draws_only_the_window(tiny_bert):
    from bertlab import inside

    result = _long(tiny_bert)
    tokens, w, run = result.tokens, slice(20, 30), result.bidirectional
    steps = inside.head_steps(tiny_bert, result, 1, 2, 25)
    layer_steps = inside.layer_steps(tiny_bert, result.encoding)
    window = list(range(20, 30))
    charts = {
        "mask": figures.mask_matrix(tokens, run.allowed, "causal", w),
        "rollout": figures.rollout_heatmap(tokens, run, 1, w),
        "norms": figures.embedding_norms(tokens, result.embeddings, w),
        "divergence": figures.divergence_heatmap(tokens, result.divergence(), w),
        "layer change": figures.layer_change_heatmap(tokens, run.layer_change(), w),
        "shares": figures.sublayer_shares(tokens, layer_steps.shares(), w),
        "neuron": figures.neuron_bars(tokens, layer_steps.neuron(1, 3), 1, 3, w),
        "steps": figures.head_steps_chart(tokens, steps, w),
        "change": figures.change_heatmap(tokens, np.ones((3, 64)), "t", w),
        "attribution": figures.attribution_chart(tokens, {"a": np.arange(64.0), "b": -np.arange(64.0)}, "t", w),
    }
    for name, fig in charts.items():
        for trace in fig.data:
            assert list(trace.x) == window, name
    np.testing.assert_array_equal(charts["attribution"].data[0].y, np.arange(20.0, 30.0))
    assert [list(t.y) for t in figures.embeddings_heatmaps(tokens, result.embeddings, w).data] == [window] * 5  # the 3 parts, sum, LayerNorm
    assert [list(t.y) for t in figures.head_vectors(tokens, steps, w).data[2:]] == [window] * 2  # k and q ⊙ k
    mixture = figures.value_mixture(tokens, steps, w)
    assert len(mixture.data[0].z) == 11 and list(mixture.data[0].z[-1]) == list(steps.output)  # the output sums every key


def test_mask_each_in_a_window_keeps_the_whole_texts_totals(tiny_bert):
    result = _long(tiny_bert)
    each = bertlab.mask_each_token(tiny_bert, result.encoding)
    fig = figures.mask_each_chart(result.tokens, each, slice(20, 30))
    inside = [i for i, p in enumerate(each.positions) if 20 <= p < 30]
    np.testing.assert_array_equal(fig.data[0].y, np.asarray(each.log_probs)[inside])
    assert f"{each.pseudo_log_likelihood:.2f}" in fig.layout.title.text


def test_a_512_token_axis_labels_at_most_TICK_LABELS_tokens_and_says_where(tiny_bert):
    from bertlab.tokens import Token

    tokens = [Token(f"w{i % 7}", 5, 0, i, 0, 0, False, False, False) for i in range(512)]
    fig = figures.attention_heatmap(tokens, np.full((512, 512), 1 / 512, dtype=np.float32))
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert 0 < len(axis.tickvals) <= figures.TICK_LABELS
        for value, text in zip(axis.tickvals, axis.ticktext):
            assert text == f"w{value % 7} · {value}"  # the piece and its position


def test_a_mask_chart_names_its_two_colours(tiny_bert):
    result = bertlab.analyze(tiny_bert, "the cat sat.")
    fig = figures.mask_matrix(result.tokens, result.causal.allowed, "causal")
    trace = fig.data[0]
    assert trace.showscale is not False and list(trace.colorbar.ticktext) == ["blocked", "may attend"]
    assert (trace.zmin, trace.zmax) == (0, 1) and list(trace.colorbar.tickvals) == [0.25, 0.75]
    assert trace.colorscale[0][1] == trace.colorscale[1][1] != trace.colorscale[-1][1]  # one colour per half
    assert "1 = may attend, 0 = blocked" in trace.hovertemplate


def test_the_head_view_has_one_layer_control_the_pages(tiny_bert):
    """bertviz gets one layer, so its layer menu would offer one choice beside the page's slider: it is hidden
    (kept in the page, since bertviz's script reads it). Fails if bertviz changes that markup."""
    result = bertlab.analyze(tiny_bert, "the cat sat.")
    page = attention_views.head_view(result.tokens, result.bidirectional.attentions, layer=1)
    assert page.count(attention_views.LAYER_MENU) == 1  # the one inside the hidden span below
    assert '<span hidden>Layer: <select id="layer"></select></span>' in page


def test_mask_each_bars_stand_at_their_positions(tiny_bert):
    result = _long(tiny_bert)
    each = bertlab.mask_each_token(tiny_bert, result.encoding)
    fig = figures.mask_each_chart(result.tokens, each, slice(20, 30))
    assert list(fig.data[0].x) == [p for p in each.positions if 20 <= p < 30] == list(range(20, 30))
    assert list(fig.layout.xaxis.tickvals) == list(range(20, 30))
    empty = figures.mask_each_chart(result.tokens, each, slice(63, 64))  # only [SEP]: nothing, and no error
    assert len(empty.data[0].x) == 0


def test_a_window_fits_its_colour_scale_and_a_whole_text_keeps_0_to_1(tiny_bert):
    result = _long(tiny_bert)
    weights = result.bidirectional.attention(0, 0)
    assert figures.attention_heatmap(result.tokens, weights).data[0].zmax == 1.0
    windowed = figures.attention_heatmap(result.tokens, weights, window=slice(10, 50)).data[0]
    assert windowed.zmax == pytest.approx(float(weights[10:50, 10:50].max()))
    mask = figures.mask_matrix(result.tokens, result.causal.allowed, "causal", slice(10, 50)).data[0]
    assert (mask.zmin, mask.zmax) == (0, 1)  # two colours, whatever the window


# --- issue 20: titles off the data, panels that can stack, one pair of colour scales, charts in words -----------

def test_a_title_is_anchored_above_the_plot_and_lifted_over_subplot_titles():
    import plotly.graph_objects as go

    fig = figures.fit_title(go.Figure(layout=dict(title="a title long enough to need a second line on a phone screen")))
    title = fig.layout.title
    assert "<br>" in title.text and all(len(line) <= figures.TITLE_CHARS for line in title.text.split("<br>"))
    assert (title.yref, title.y, title.yanchor, title.automargin) == ("paper", 1, "bottom", True)
    one_line = figures.fit_title(go.Figure(layout=dict(title="short")))
    assert title.pad.b > one_line.layout.title.pad.b >= figures.TITLE_GAP  # a second line lifts the first
    preds = [Prediction("a", 1, 0.5)]
    with_subtitles = figures.fit_title(figures.prediction_bars({"bidirectional": preds, "causal": preds}, "short"))
    assert with_subtitles.layout.title.pad.b >= one_line.layout.title.pad.b + 16  # above "bidirectional", "causal"


def test_a_figure_in_two_columns_comes_apart_into_one_figure_per_column(tiny_bert):
    from bertlab import inside

    result = bertlab.analyze(tiny_bert, "the cat sat on the mat.")
    preds = {"bidirectional": [Prediction("a", 1, 0.6)], "causal": [Prediction("b", 2, 0.3)]}
    left, right = figures.panels(figures.prediction_bars(preds, "t"))
    assert [t.x[0] for t in left.data] == [0.6] and [t.x[0] for t in right.data] == [0.3]
    assert (left.layout.title.text, right.layout.title.text) == ("bidirectional", "causal")  # its subplot title
    for part in (left, right):
        layout = part.layout.to_plotly_json()
        assert [list(v["domain"]) for k, v in layout.items() if k.startswith("xaxis")] == [[0.0, 1.0]]  # the whole width
    steps = inside.head_steps(tiny_bert, result, 1, 2, 3)
    q_and_k, products = figures.panels(figures.head_vectors(result.tokens, steps))
    assert len(q_and_k.data) == len(products.data) == 2  # the q strip over the keys; the q strip over q ⊙ k
    assert [a.text for a in q_and_k.layout.annotations] == ["k: every key"]
    shares = figures.sublayer_shares(result.tokens, inside.layer_steps(tiny_bert, result.encoding).shares())
    assert len(figures.panels(shares)) == 2
    single = figures.attention_heatmap(result.tokens, result.bidirectional.attention(0, 0))
    assert figures.panels(single) == [single]


def test_a_chart_in_words_names_its_extremes(tiny_bert):
    result = bertlab.analyze(tiny_bert, "the cat sat on the mat.")
    weights = result.bidirectional.attention(1, 2)
    q, k = np.unravel_index(int(np.argmax(weights)), weights.shape)
    said = figures.describe(figures.attention_heatmap(result.tokens, weights, title="layer 1, head 2"))
    assert said.startswith("Chart: layer 1, head 2.")
    assert f"to {weights.max():.3g}" in said
    assert f"query {result.tokens[q].text}, key (attended to) {result.tokens[k].text}" in said
    bars = figures.describe(figures.prediction_bars({"bidirectional": [Prediction("dog", 1, 0.7), Prediction("cat", 2, 0.2)]}, "m"))
    assert "0.7 (at 1. dog)" in bars and "0.2 (at 2. cat)" in bars


def _scales(fig) -> list:
    """Every colour scale a figure's traces use (heatmaps' and markers')."""
    found = []
    for trace in fig.data:
        scale = getattr(trace, "colorscale", None) or (getattr(getattr(trace, "marker", None), "colorscale", None)
                                                          if trace.type != "heatmap" else None)
        if scale:
            found.append(tuple(tuple(step) for step in scale))
    return found


def test_one_sequential_and_one_diverging_scale_throughout(tiny_bert):
    """Every magnitude is drawn in figures.SEQUENTIAL and every signed value in figures.DIVERGING (colour-blind
    safe); the only other scales are the mask's and the removed-head grid's flat two-colour keys."""
    import plotly.graph_objects as go
    from bertlab import inside

    def named(name):
        return tuple(tuple(step) for step in go.Heatmap(colorscale=name).colorscale)

    allowed = {named(figures.SEQUENTIAL), named(figures.DIVERGING)}
    result = bertlab.analyze(tiny_bert, "the quick [MASK] fox.", "a pen")
    run = result.bidirectional
    steps = inside.head_steps(tiny_bert, result, 1, 2, 3)
    sense = bertlab.senses(tiny_bert, "cat", ["the cat sat.", "a cat ran."])
    built = [
        figures.attention_heatmap(result.tokens, run.attention(0, 0)), figures.rollout_heatmap(result.tokens, run, 1),
        figures.embeddings_heatmaps(result.tokens, result.embeddings), figures.divergence_heatmap(result.tokens, result.divergence()),
        figures.layer_change_heatmap(result.tokens, run.layer_change()), figures.head_vectors(result.tokens, steps),
        figures.value_mixture(result.tokens, steps), figures.sublayer_shares(result.tokens, inside.layer_steps(tiny_bert, result.encoding).shares()),
        figures.similarity_heatmap(sense, "causal", 1), figures.change_heatmap(result.tokens, np.ones((3, len(result.tokens))), "t"),
        figures.head_grid(2, 4, [(0, 1)], np.arange(8.0).reshape(2, 4)),
        figures.mask_each_chart(result.tokens, bertlab.mask_each_token(tiny_bert, result.encoding)),
        *[figures.head_stat_grid(run, stat) for stat in bertlab.HEAD_STATS],
    ]
    for fig in built:
        for scale in _scales(fig):
            assert scale in allowed, (fig.layout.title.text, scale[:2])


def test_heatmaps_meant_to_be_compared_share_one_colour_range(tiny_bert):
    sense = bertlab.senses(tiny_bert, "cat", ["the cat sat.", "a cat ran away.", "my cat."])
    last = sense.layers - 1
    both = [figures.similarity_heatmap(sense, kind, last).data[0] for kind in ("bidirectional", "causal")]
    values = np.concatenate([sense.similarity[k][last].ravel() for k in ("bidirectional", "causal")])
    assert both[0].zmin == both[1].zmin == pytest.approx(values.min())
    assert both[0].zmax == both[1].zmax == pytest.approx(values.max())
    result = _long(tiny_bert)
    a, b = result.bidirectional.attention(0, 0), result.causal.attention(0, 0)
    top = figures.shared_zmax([a, b], slice(10, 50))
    assert top == pytest.approx(max(float(a[10:50, 10:50].max()), float(b[10:50, 10:50].max())))
    assert figures.shared_zmax([a, b]) == 1.0  # a whole text: the 0-1 scale


def test_inside_a_head_stays_readable_at_128_tokens(tiny_bert):
    """A window of many keys: the value mixture names at most TICK_LABELS rows (and the keys weighted most), the
    query-key plane names at most NAMED_POINTS keys, and the softmax panel's axis is fitted to its weights."""
    from bertlab import inside

    result = _long(tiny_bert)  # 64 tokens: every position of the tiny model, as 512 are BERT-base's
    steps = inside.head_steps(tiny_bert, result, 1, 2, 30)
    mixture = figures.value_mixture(result.tokens, steps)
    labels = list(mixture.layout.yaxis.ticktext)
    assert len(labels) <= figures.TICK_LABELS + 1 and labels[-1] == "= output"
    heaviest = int(np.argmax(steps.weights))
    assert any(label.endswith(f"· {heaviest}") for label in labels)
    plane = figures.query_key_projection(steps)
    named = [t for t in plane.data[0].text if t]
    assert 0 < len(named) <= figures.NAMED_POINTS
    chart = figures.head_steps_chart(result.tokens, steps)
    top = list(chart.layout.yaxis4.range)[1]
    assert float(steps.weights.max()) <= top <= max(1.15 * float(steps.weights.max()), 1e-6) + 1e-9


def test_thumbnail_labels_grow_with_the_tiles():
    """The all-heads grid's head and layer numbers are drawn at 0.4 of a tile's pitch, so that the grid shrunk to
    a phone's 350 px still shows them at 11 px or more."""
    from PIL import Image
    import io

    for layers, heads, tokens in ((6, 12, 10), (12, 12, 64)):
        png = attention_views.thumbnails(np.random.default_rng(0).random((layers, heads, tokens, tokens)).astype(np.float32))
        image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
        # the label band above the tiles ends at the first row the tiles fill; its rows with ink are the digits'
        band = image[: int(np.argmax((image < 250).mean(axis=1) > 0.5))]
        ink_rows = np.where((band < 128).any(axis=1))[0]
        digit = ink_rows.max() - ink_rows.min() + 1
        on_a_phone = digit * min(1.0, 350 / image.shape[1])
        assert on_a_phone >= 7, (layers, heads, tokens, digit, image.shape)  # a digit's ink is ~0.7 of the type size


def test_thumbnail_pooling_on_the_device_equals_pooling_on_the_host(tiny_bert):
    """pooled_heads from the per-layer tensors (where a GPU keeps them) equals the same average pooling done on the
    whole host array by hand, and the PNG is the same either way."""
    from bertlab import attention_views

    run = bertlab.analyze(tiny_bert, "the quick brown fox jumps over the lazy dog and the cat sat on the mat .").bidirectional
    host = run.attentions.astype(np.float32)
    size = 5
    edges = np.linspace(0, host.shape[-1], size + 1).astype(int)
    by_hand = np.array([[[[host[l, h, edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean() for j in range(size)] for i in range(size)]
                         for h in range(host.shape[1])] for l in range(host.shape[0])])
    by_hand /= by_hand.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(attention_views.pooled_heads(run.attention_layers, size), by_hand, atol=1e-5)
    assert attention_views.thumbnails(run.attention_layers) == attention_views.thumbnails(host)


def test_describe_reads_values_along_x_when_y_holds_names():
    """A dot plot with names on y (the atlas's head behaviour) is described by its x values, never read as numbers."""
    import plotly.graph_objects as go
    from bertlab.figures import describe

    fig = go.Figure(go.Scatter(x=[0.1, 0.7, 0.2], y=["[CLS]-like", "previous", "next"], mode="markers", name="mean"))
    said = describe(fig)
    assert "from 0.1 (at [CLS]-like) to 0.7 (at previous)" in said, said


def test_sense_curves_keep_the_legends_order_and_draw_the_first_curve_on_top():
    """BERT under a causal mask lies on GPT's line at 1.0: the curves given first are drawn last (on top)."""
    from bertlab.figures import sense_curves

    curves = {"bert (bidirectional)": np.array([1.0, 0.9]), "bert under a causal mask": np.ones(2), "gpt2 (GPT, causal by design)": np.ones(3)}
    fig = sense_curves(curves, "t")
    assert [t.name for t in fig.data][-1] == "bert (bidirectional)" and [t.name for t in fig.data][0].startswith("gpt2")
    assert sorted(fig.data, key=lambda t: t.legendrank)[1].line.dash == "dash"
