"""The bench's JSON keys are a contract, and its figures must be sane measurements (positive, finite, the
seconds it reports adding up to its ratios); they are for README, never asserted as speed targets here.
The app's figures (bytes on the wire, typing latency) are checked in tests/test_browser.py, on its server."""

from __future__ import annotations

import json
import math

import pytest

import bertlab

from bertlab.sample import text_of
from bertlab.cli import main

KEYS = {"p1_ratio", "p2_ratio_vs_batched", "p2_speedup_vs_loop", "p3_bytes_128", "p3_bytes_512", "p5_seconds",
        "p6_rss_mb", "p6_rss_growth_mb", "p4_ms", "p8_importance_ratio", "notes", "p1_512_ratio", "p4_host_bytes", "p4_view_bytes",
        "p10_influence_ratio", "p11_atlas_seconds"}


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_bench_engine_figures_are_sane_and_the_rest_says_why_not(capsys):
    code = main(["bench", "--model-config", "bert-tiny", "--repeats", "1", "--analyses", "0", "--no-browser", "--json", "--device", "cpu",
                 "--p4-model-config", "bert-tiny"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert KEYS <= set(data)
    assert data["device"] == "cpu" and data["model_config"] == "bert-tiny"
    seconds = data["seconds"]
    assert all(positive(t) for t in seconds.values()), seconds
    assert data["p1_ratio"] == pytest.approx(seconds["full_analysis_64"] / seconds["bare_sdpa_64"])
    assert data["p2_ratio_vs_batched"] == pytest.approx(seconds["mask_each_32"] / seconds["batched_sdpa_32x34"])
    assert data["p2_speedup_vs_loop"] == pytest.approx(seconds["mask_each_loop_32"] / seconds["mask_each_32"])
    assert data["p1_512_ratio"] == pytest.approx(seconds["full_analysis_512"] / seconds["bare_sdpa_512"])
    assert data["p4_model_config"] == "bert-tiny"
    statistics = len(bertlab.HEAD_STATS) * 2 * 2 * 4  # bert-tiny: 2 layers x 2 heads, float32, computed when the page asks
    assert data["p4_view_bytes"] == 512 * 512 * 4 + statistics, "the heatmap view brings one head's float32 weights and the statistics"
    assert 0 < data["p4_host_bytes"] < 2 * 512 * 512 * 4, "an analysis brings no attention matrix to the host"
    assert data["p8_importance_ratio"] == pytest.approx(seconds["head_importance_32"] / seconds["plain_sdpa_4x32"])  # bert-tiny: 2 x 2 heads
    assert data["p10_influence_ratio"] == pytest.approx(seconds["influence_32"] / seconds["attribute_32"])
    assert data["p11_atlas_seconds"] == pytest.approx(seconds["atlas_528_minilm"])
    # not asked for (--no-browser, --analyses 0) or not possible here (no GPU): None, never a made-up number
    for key in ("p3_bytes_128", "p3_bytes_512", "p5_seconds", "p6_rss_mb", "p6_rss_growth_mb", "p4_ms"):
        assert data[key] is None, key
    assert [note for note in data["notes"] if "p4_ms" in note], data["notes"]
    assert not [note for note in data["notes"] if "failed" in note], data["notes"]


def test_bench_memory_figure_is_sane():
    """P6's measurement, in this process, over three analyses with the tiniest random model."""
    from labtools.appbench import memory_in_this_process

    data = memory_in_this_process("random:bert-tiny", 3)
    assert positive(data["p6_rss_mb"]) and positive(data["p6_rss_first_mb"])
    assert data["p6_rss_mb"] >= data["p6_rss_first_mb"]
    assert data["p6_rss_growth_mb"] == pytest.approx(data["p6_rss_mb"] - data["p6_rss_first_mb"])
    assert math.isfinite(data["p6_rss_second_half_growth_mb"])


def test_bench_text_has_the_asked_length(minilm):
    from bertlab import encode

    for n in (34, 64, 128, 512):
        assert len(encode(minilm, text_of(n))) == n


def test_bfloat16_matches_float32_within_the_stated_tolerance():
    """The half-precision check P4 applies on a GPU, here with bfloat16 on the CPU."""
    from bertlab import encode
    from bertlab.analysis import analyze_encoding
    from bertlab.bench import half_agreement
    from bertlab.loading import random_model

    full = random_model("bert-mini", "cpu")
    half = random_model("bert-mini", "cpu", "bfloat16")
    enc = encode(full, text_of(64))
    reference, result = analyze_encoding(full, enc), analyze_encoding(half, enc)
    assert (result.causal.attentions[..., ~result.causal.allowed] == 0).all()
    assert half_agreement(reference, result)["within_tolerance"], half_agreement(reference, result)
