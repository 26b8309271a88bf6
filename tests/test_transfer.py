"""What an analysis turns into host arrays (issue 12): small data when it is made, one head when a view asks.

The byte counts are the scaled form of the bench's p4_host_bytes / p4_view_bytes: they are counted where device
tensors become numpy (`bertlab.transfer.to_host`), so they are the same on a CPU and a GPU.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import bertlab
from bertlab import figures, transfer

TEXT = "the quick brown [MASK] jumps over the lazy dog and the cat sat on the mat by the river bank"
PAIR = "i have a pen"


@pytest.fixture(scope="module")
def analysis(tiny_bert):
    return bertlab.analyze(tiny_bert, TEXT, PAIR)


def one_layer_attention_bytes(a: bertlab.Analysis) -> int:
    n = len(a.tokens)
    return a.model.heads * n * n * 4


def test_an_analysis_brings_only_small_data_to_the_host(tiny_bert):
    with transfer.counting() as host:
        a = bertlab.analyze(tiny_bert, TEXT, PAIR)
    assert host.bytes < one_layer_attention_bytes(a), "an analysis must not bring attentions, hidden states or embeddings to the host"
    with transfer.counting() as asked:  # the head statistics are computed when a view asks, and come over counted
        stats = sum(v.nbytes for run in a.runs.values() for v in run.head_stats.values())
    assert asked.bytes == stats > 0
    assert a.bidirectional.mlm and a.nsp is not None  # the small results are all there


def test_one_head_adds_exactly_query_by_key_floats(analysis):
    n = len(analysis.tokens)
    run = analysis.causal
    with transfer.counting() as host:
        weights = run.attention(1, 2)
        figures.attention_heatmap(analysis.tokens, weights, title="layer 1, head 2")  # the heatmap view's data
    assert weights.shape == (n, n)
    assert host.bytes == n * n * 4
    with transfer.counting() as host:
        run.attention(0, 1, query=3)
        run.hidden(1)
    assert host.bytes == n * 4 + n * analysis.model.hidden_size * 4


def test_accessors_equal_the_whole_arrays(tiny_bert):
    a = bertlab.analyze(tiny_bert, TEXT, PAIR)  # fresh: accessors first, whole arrays after
    for run in a.runs.values():
        heads = [(layer, head, run.attention(layer, head)) for layer in range(a.model.layers) for head in range(a.model.heads)]
        rows = [run.attention(1, 3, query=q) for q in range(run.length)]
        hidden = [run.hidden(layer) for layer in range(a.model.layers + 1)]
        token = run.hidden(2, token=4)
        rollout = [run.rollout_at(layer) for layer in range(a.model.layers)]
        for layer, head, weights in heads:
            np.testing.assert_array_equal(weights, run.attentions[layer, head])
        np.testing.assert_array_equal(np.stack(rows), run.attentions[1, 3])
        np.testing.assert_array_equal(np.stack(hidden), run.hidden_states)
        np.testing.assert_array_equal(token, run.hidden_states[2, 4])
        np.testing.assert_array_equal(np.stack(rollout), run.rollout)
        with transfer.counting() as host:
            run.attention(0, 0), run.hidden(0), run.rollout_at(0)
        assert host.bytes == 0, "once the whole array is on the host, a slice of it costs nothing"


def test_whole_arrays_are_converted_once_and_zero_copy_on_a_cpu(tiny_bert):
    a = bertlab.analyze(tiny_bert, TEXT, PAIR)
    run = a.bidirectional
    held = a.nbytes
    with transfer.counting() as host:
        first, again = run.attentions, run.attentions
    assert first is again and host.bytes == first.nbytes
    assert np.shares_memory(first, run.attention_tensor.numpy()), "on a CPU the numpy array is a view of the tensor"
    assert a.nbytes == held, "a zero-copy view holds no extra memory"
    assert held >= sum(r.attention_tensor.nbytes + r.hidden_tensor.nbytes for r in a.runs.values()), "nbytes counts the tensors"


def test_compact_keeps_exact_causal_zeros_and_halves_a_head(analysis):
    small = analysis.compact()
    n = len(analysis.tokens)
    above = np.triu(np.ones((n, n), dtype=bool), k=1)
    with transfer.counting() as host:
        weights = small.causal.attention(1, 0)
    assert weights.dtype == np.float16 and host.bytes == n * n * 2
    assert (weights[above] == 0.0).all(), "float16 must keep the causal mask's zeros exact"
    np.testing.assert_allclose(weights, analysis.causal.attention(1, 0), atol=1e-3)
    assert analysis.nbytes - small.nbytes == sum(r.attention_tensor.nbytes for r in analysis.runs.values()) // 2


def test_counting_is_per_thread():
    t = torch.ones(8)
    with transfer.counting() as mine:
        worker = threading.Thread(target=lambda: transfer.to_host(torch.ones(1000)))
        worker.start()
        worker.join()
        transfer.to_host(t)
    assert mine.bytes == 32


def test_bfloat16_comes_over_as_float32_and_counts_as_such():
    with transfer.counting() as host:
        array = transfer.to_host(torch.ones(3, 4, dtype=torch.bfloat16))
    assert array.dtype == np.float32 and host.bytes == 48


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_tensors_stay_there(tiny_bert_dir):
    loaded = bertlab.load_model(str(tiny_bert_dir), device="cuda")
    a = bertlab.analyze(loaded, TEXT, PAIR)
    assert a.causal.attention_tensor.device.type == "cuda"
    n = len(a.tokens)
    with transfer.counting() as host:
        weights = a.causal.attention(1, 2)
    assert host.bytes == n * n * 4 and (weights[np.triu(np.ones((n, n), dtype=bool), 1)] == 0).all()
    np.testing.assert_allclose(a.causal.attentions.sum(-1), 1.0, atol=1e-5)  # a whole tensor, through pinned memory
