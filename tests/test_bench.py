"""The bench's JSON keys are a contract; its figures are for README, never asserted as timings here."""

from __future__ import annotations

import json

from bertlab.bench import text_of
from bertlab.cli import main

KEYS = {"p1_ratio", "p2_ratio_vs_batched", "p2_speedup_vs_loop", "p3_bytes_128", "p3_bytes_512", "p5_seconds",
        "p6_rss_mb", "p6_rss_growth_mb", "p4_ms", "notes"}


def test_bench_reports_every_key_or_says_why_not(capsys):
    code = main(["bench", "--model-config", "bert-tiny", "--repeats", "1", "--analyses", "0", "--no-browser", "--json", "--device", "cpu"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert KEYS <= set(data)
    for key in ("p1_ratio", "p2_ratio_vs_batched", "p2_speedup_vs_loop"):
        assert isinstance(data[key], float) and data[key] > 0
    for key in KEYS - {"notes", "p1_ratio", "p2_ratio_vs_batched", "p2_speedup_vs_loop"}:
        assert data[key] is None or isinstance(data[key], (int, float))
    assert any("p4_ms" in note for note in data["notes"]) or data["p4_ms"] is not None


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
