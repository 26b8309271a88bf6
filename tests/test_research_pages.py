"""The influence panel and the head atlas through Streamlit's AppTest, with tiny checkpoints and the packaged MiniLM."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from test_app import markdown, start, visit

INFLUENCE, ATLAS = "pages/token_influence.py", "pages/head_atlas.py"


def charts(at) -> int:
    return len(at.get("plotly_chart"))


def test_influence_panel_with_an_mlm_head(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="i went to the bank to [MASK] money."), INFLUENCE)
    assert charts(at) == 3  # aligned bars, the Spearman matrix, the layer strips
    text = markdown(at)
    assert "What the measures say here" in text and "Spearman ρ" in text
    assert "the MLM head's top guess" in text
    at.slider(key="influence_layer").set_value(0).run()
    assert not at.exception and charts(at) == 3
    at.pills(key="influence_position").set_value(2).run()  # another position: measured again
    assert not at.exception and "position 2 can see" in markdown(at)


@pytest.mark.parametrize("family", ["minilm", "gpt2"])
def test_influence_panel_without_an_mlm_head(family, family_dirs):
    model = "minilm" if family == "minilm" else str(family_dirs["gpt2"])
    at = visit(start(model, text="The bank was robbed yesterday."), INFLUENCE)
    assert charts(at) == 3
    text = markdown(at)
    assert "has no masked-LM head" in text
    if family == "gpt2":
        assert "is a decoder" in text and "single space" in text


def test_atlas_page_map_head_and_link(tiny_bert_dir):
    at = start(str(tiny_bert_dir))
    at.session_state["atlas_limit"] = 24
    at = visit(at, ATLAS)
    assert charts(at) == 4  # the map, the head's behaviour, its typical sentence, the grid
    assert "24 sentences" in markdown(at)
    chosen = at.selectbox(key="atlas_head").value
    link = at.page_link[0]
    assert link.proto.page.endswith("experiments") or "run_experiments" in link.proto.page
    assert parse_qs(link.proto.query_string) == {"experiment": ["Ablate heads"], "heads": [chosen]}
    at.selectbox(key="atlas_head").set_value("0.1").run()
    assert not at.exception and f"Head 0.1" in markdown(at)
    assert parse_qs(at.page_link[0].proto.query_string)["heads"] == ["0.1"]
    at.segmented_control(key="atlas_mask").set_value("causal").run()
    at.segmented_control(key="atlas_colour").set_value("behaviour").run()
    assert not at.exception and "causal mask" in markdown(at)


def test_atlas_page_reads_typed_sentences_and_refuses_empty_ones(tiny_bert_dir):
    at = start(str(tiny_bert_dir))
    at.session_state["atlas_source"] = "Type sentences"
    at = visit(at, ATLAS)
    assert "typed sentences" in markdown(at) and charts(at) == 4
    at.text_area(key="atlas_sentences").input("   \n  ").run()
    assert any("Give at least one sentence" in w.value for w in at.warning)
    assert not at.exception
