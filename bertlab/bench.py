"""`python -m bertlab bench`: speed and size against references measured in the same run.

Timing does not depend on weight values, so a random-init model of a published size (e.g. bert-base)
costs what the real one costs, and everything here runs offline. Ratios are medians of repeats.
The engine's figures (P1, P2, P4, and P4's host bytes, counted by `bertlab.transfer`) are measured here; the app's (P3, P5 in Chromium, P6 under AppTest)
by `labtools.appbench`, which drives the app from outside the engine.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import time
from typing import Callable

import torch

from .analysis import analyze_encoding
from . import compiled
from .loading import LoadedModel, compile_model, random_model
from .mlm import mask_each_token
from .sample import text_of
from .families import Sizes
from .tokens import encode

def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sdpa_reference(loaded: LoadedModel, attention: str | None = None) -> torch.nn.Module:
    """The same weights with PyTorch's fused attention (where the family has it: DeBERTa does not), or the
    `attention` implementation named, and no extra outputs: the floor."""
    config = copy.deepcopy(loaded.encoder.config)
    cls = type(loaded.encoder)
    config._attn_implementation = attention or ("sdpa" if getattr(cls, "_supports_sdpa", False) else "eager")
    try:
        ref = cls(config, add_pooling_layer=False)
    except TypeError:  # only BERT's copies have a pooler to leave out
        ref = cls(config)
    ref.load_state_dict(loaded.encoder.state_dict(), strict=False)
    ref.bench_options = dict(loaded.adapter.run_options)
    return ref.to(loaded.device, loaded.dtype).eval()


def bare(ref: torch.nn.Module, ids: torch.Tensor) -> Callable[[], object]:
    ids = ids.to(next(ref.parameters()).device)
    options = getattr(ref, "bench_options", {})

    def run() -> object:
        with torch.inference_mode():
            return ref(input_ids=ids, **options)

    return run


def measure_engine(loaded: LoadedModel, repeats: int) -> dict:
    ref = sdpa_reference(loaded)
    enc64 = encode(loaded, text_of(64))
    assert len(enc64) == 64
    t_bare = median_seconds(bare(ref, enc64.input_ids), repeats)
    t_full = median_seconds(lambda: analyze_encoding(loaded, enc64), repeats)

    enc = encode(loaded, text_of(34, mask=False))  # 32 ordinary tokens
    rows = enc.input_ids.repeat(32, 1)
    t_batched = median_seconds(bare(ref, rows), repeats)
    t_each = median_seconds(lambda: mask_each_token(loaded, enc), repeats)
    t_loop = median_seconds(lambda: mask_each_token(loaded, enc, batch_size=1), max(1, repeats // 3))

    enc512 = encode(loaded, text_of(512))
    t_bare_512 = median_seconds(bare(ref, enc512.input_ids), max(1, repeats // 2))
    t_full_512 = median_seconds(lambda: analyze_encoding(loaded, enc512), max(1, repeats // 2))
    experiments = measure_experiments(loaded, ref, repeats)
    return {
        **experiments,
        "p1_ratio": t_full / t_bare,
        "p1_512_ratio": t_full_512 / t_bare_512,
        "p2_ratio_vs_batched": t_each / t_batched,
        "p2_speedup_vs_loop": t_loop / t_each,
        "seconds": {
            "bare_sdpa_64": t_bare,
            "full_analysis_64": t_full,
            "batched_sdpa_32x34": t_batched,
            "mask_each_32": t_each,
            "mask_each_loop_32": t_loop,
            "bare_sdpa_512": t_bare_512,
            "full_analysis_512": t_full_512,
            **experiments.pop("seconds"),
        },
    }


FAMILY_SHAPE = Sizes(6, 12, 384, 1536, 512)
"""The one shape every family is timed at (MiniLM's): 6 layers, 12 heads, hidden 384, FFN 1536."""


def measure_families(repeats: int, device: str | None = None, tokens: int = 64) -> dict:
    """P1 for every family at one shape: the full analysis at 64 tokens (both masks, every internal) ÷ one bare
    forward of the same random weights with the family's fastest attention. What it shows: the adapters add
    nothing a family pays for beyond what BERT pays (issue: no family above 1.3× BERT's ratio)."""
    from . import families
    from .loading import random_family

    ratios, seconds = {}, {}
    long_text = text_of(4 * tokens, mask=False)
    for name, adapter in families.adapters().items():
        loaded = random_family(adapter, FAMILY_SHAPE, device)
        enc = encode(loaded, long_text, max_length=tokens)
        # the faster of its fused and its eager attention (ModernBERT's fused path with local windows is the slower
        # on a CPU): the ratio is against the best this family's own forward does
        t_bare = min(median_seconds(bare(sdpa_reference(loaded, kind), enc.input_ids), repeats) for kind in ("sdpa", "eager")
                     if kind == "eager" or getattr(type(loaded.encoder), "_supports_sdpa", False))
        t_full = median_seconds(lambda: analyze_encoding(loaded, enc), repeats)
        ratios[name] = t_full / t_bare
        seconds[name] = {"bare": t_bare, "full_analysis": t_full, "tokens": len(enc)}
    return {
        "p1_family_ratios": ratios,
        "p1_family_worst_vs_bert": max(ratios.values()) / ratios["bert"],
        "p1_family_detail": {"shape": "6 layers, 12 heads, hidden 384, FFN 1536, random weights", "seconds": seconds},
    }


def measure_experiments(loaded: LoadedModel, ref: torch.nn.Module, repeats: int) -> dict:
    """P8: head importance at 32 tokens (every head ablated alone: layers × heads rows plus the unablated one,
    batched, with the ablation hooks and the MLM head at one position) against one plain batched SDPA pass of
    layers × heads rows of the same text."""
    from .experiments import head_importance

    enc = encode(loaded, text_of(32))
    position = enc.mask_positions[0]
    rows = loaded.info.layers * loaded.info.heads
    t_plain = median_seconds(bare(ref, enc.input_ids.repeat(rows, 1)), max(1, repeats // 2))
    t_importance = median_seconds(lambda: head_importance(loaded, enc, position), max(1, repeats // 2))
    return {
        "p8_importance_ratio": t_importance / t_plain,
        "seconds": {f"plain_sdpa_{rows}x32": t_plain, "head_importance_32": t_importance},
    }


def measure_host_bytes(loaded: LoadedModel, tokens: int = 512) -> dict:
    """P4's host side, counted where device tensors become numpy (the same count on a CPU and a GPU): the bytes
    one analysis of `tokens` tokens brings to the host before any view asks, and the bytes the attention page's
    heatmap view then adds (one head's (query, key) weights, and the head statistics the page shows beside it,
    computed when first asked)."""
    from . import figures, transfer

    enc = encode(loaded, text_of(tokens))
    with transfer.counting() as host:
        result = analyze_encoding(loaded, enc)
    run, layer, head = result.bidirectional, result.model.layers - 1, 0
    with transfer.counting() as view:  # what pages/attention_maps.py's Heatmap reads
        figures.attention_heatmap(result.tokens, run.attention(layer, head), title=f"layer {layer}, head {head}")
        [float(run.head_stats[name][layer, head]) for name in run.head_stats]
    return {"p4_host_bytes": host.bytes, "p4_view_bytes": view.bytes}


def run_bench(
    size: str = "bert-base", device: str | None = None, repeats: int = 7, browser: bool = True, analyses: int = 200,
    p4_size: str = "bert-large", dtype: str = "auto", families: bool = False, compile: str | None = None,
) -> dict:
    result: dict = {"model_config": size, "notes": []}
    loaded = random_model(size, device, dtype)
    if compile:  # the hook-free parts of each layer compiled (bertlab.compiled); one warm-up run compiles them
        loaded = compile_model(loaded, compile)
        analyze_encoding(loaded, encode(loaded, text_of(128)))
    result["device"] = str(loaded.device)
    result["dtype"] = loaded.info.dtype
    result["compiled"] = loaded.info.compiled
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    if loaded.device.type == "cuda":
        result["machine"] += f", {torch.cuda.get_device_name()}"
    result.update(measure_engine(loaded, repeats))
    influence = measure_influence(loaded, repeats)
    result["seconds"].update(influence.pop("seconds"))
    result.update(influence)
    result["p4_ms"] = None
    if loaded.device.type == "cuda":
        result["p4_ms"], result["p4_half_precision"] = measure_gpu(loaded, size)
    else:
        result["notes"].append("p4_ms: no CUDA GPU on this machine; run the bench on a GPU with --device cuda.")
    # One analysis with the shape P4 names (BERT-large at 512 tokens): the byte counts depend on shapes only.
    result.update(measure_host_bytes(loaded if p4_size == size else random_model(p4_size, device, dtype)), p4_model_config=p4_size)
    if families:
        result.update(measure_families(repeats, device))
    del loaded
    for key in ("p3_bytes_128", "p3_bytes_512", "p5_seconds", "p6_rss_mb", "p6_rss_growth_mb", "p10_first_page_seconds"):
        result.setdefault(key, None)
    if browser or analyses:
        # Imported here, only when the app's figures are asked for: they drive app.py from outside (a real
        # `streamlit run` in Chromium, AppTest), which is test tooling the engine must not depend on. The
        # engine's own figures need neither Streamlit nor playwright nor the repository's layout.
        try:
            from labtools.appbench import measure_app
        except ImportError as err:
            result["notes"].append(f"p3/p5/p6: labtools is not importable ({err}); run the bench from the repository root.")
        else:
            app = measure_app(f"random:{size}", browser=browser, analyses=analyses)
            result["notes"] += app.pop("notes")
            result.update(app)
    result.update(p9_index_seconds=None, p9_query_ms=None, p9_index_mb=None)
    try:
        result.update(measure_corpus(device, repeats))
    except Exception as err:  # a bench reports what it could not measure instead of dying
        result["notes"].append(f"p9: corpus measurement failed: {type(err).__name__}: {err}")
    result["p11_atlas_seconds"] = None
    try:
        atlas = measure_atlas(device, repeats)
        result["seconds"].update(atlas.pop("seconds"))
        result.update(atlas)
    except Exception as err:  # as p9: say what could not be measured
        result["notes"].append(f"p11: atlas measurement failed: {type(err).__name__}: {err}")
    return result


def measure_influence(loaded: LoadedModel, repeats: int) -> dict:
    """P10: the six influence measures for the [MASK] of a 32-token text (one plain row, value zeroing at every
    layer in one batched pass, occlusion, integrated gradients) ÷ experiments.attribute alone on the same input."""
    from .experiments import attribute
    from .influence import influence

    enc = encode(loaded, text_of(32))
    position = enc.mask_positions[0]
    t_attribute = median_seconds(lambda: attribute(loaded, enc, position), max(1, repeats // 2))
    t_influence = median_seconds(lambda: influence(loaded, enc, position), max(1, repeats // 2))
    return {"p10_influence_ratio": t_influence / t_attribute,
            "seconds": {"attribute_32": t_attribute, "influence_32": t_influence}}


def measure_atlas(device: str | None = "cpu", repeats: int = 3) -> dict:
    """P11: the head atlas (every head's behaviour, the JS distances of every pair, the map) over the shipped
    corpus with the packaged MiniLM, bidirectional (s, median)."""
    from .atlas import atlas, load_sentences
    from .loading import PACKAGED_MODEL, load_model

    loaded = load_model(PACKAGED_MODEL, device=device or "auto")
    sentences = load_sentences()[0]
    seconds = median_seconds(lambda: atlas(loaded, sentences), max(1, min(3, repeats)), warmup=0)
    return {"p11_atlas_seconds": seconds, "seconds": {f"atlas_{len(sentences)}_minilm": seconds}}


CORPUS_QUERY = ("I sat on the bank and watched the river flow.", "bank")


def measure_corpus(device: str | None = "cpu", repeats: int = 3, loaded: LoadedModel | None = None, corpus=None) -> dict:
    """P9: index the shipped sense corpus with the packaged MiniLM (s, median), a neighbours query once the
    index exists (ms: the query sentence's forward pass plus the search), and the index's memory (MB)."""
    from . import corpus as corpora
    from .loading import PACKAGED_MODEL, load_model

    loaded = loaded or load_model(PACKAGED_MODEL, device=device or "auto")
    corpus = corpus or corpora.shipped_corpus()
    sentence, word = CORPUS_QUERY if corpus is corpora.shipped_corpus() else (corpus.sentences[0], corpus.words[0])
    corpora.occurrence(loaded, sentence, word)  # first-call costs are not what P9 measures
    indexes = []
    seconds = median_seconds(lambda: indexes.append(corpora.build_index(loaded, corpus)), max(1, min(3, repeats)), warmup=0)
    index = indexes[-1]
    layer = index.layers - 1

    def query() -> object:
        return corpora.neighbors(index, word, corpora.occurrence(loaded, sentence, word), layer, "bidirectional", 5)

    vector = corpora.occurrence(loaded, sentence, word)
    search = median_seconds(lambda: corpora.neighbors(index, word, vector, layer, "bidirectional", 5), 50)
    return {
        "p9_index_load_seconds": index_load_seconds(loaded, corpus, index),
        "p9_index_seconds": seconds,
        "p9_query_ms": 1000 * median_seconds(query, 20),
        "p9_index_mb": index.nbytes / 2**20,
        "p9_detail": {"model": loaded.info.name, "device": str(loaded.device), "sentences": len(index), "search_ms": 1000 * search},
    }


def index_load_seconds(loaded: LoadedModel, corpus, index) -> float:
    """The index kept on disk, read back in a new process (a second server start): seconds for
    bertlab.corpus.stored_index to return it there, the model's fingerprint included, its loading not."""
    import subprocess
    import sys
    import tempfile

    from . import corpus as corpora

    with tempfile.TemporaryDirectory() as folder:
        path, key = corpora.index_path(loaded, corpus, index.mask_types, __import__("pathlib").Path(folder))
        corpora.write_index(path, key, index)
        code = (
            "import json, time; from pathlib import Path; import bertlab; from bertlab import corpus as c; "
            f"m = bertlab.load_model({loaded.info.name!r}, device={loaded.info.device!r}); t = time.perf_counter(); "
            f"i = c.stored_index(m, c.shipped_corpus(), directory=Path({folder!r})); "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'rows': len(i)}))"
        )
        if corpus is not corpora.shipped_corpus():
            raise ValueError("the load figure is measured on the shipped corpus")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


HALF_TOLERANCE = {"attention": 2e-2, "hidden_cosine": 0.99}
"""Half precision passes when every attention weight is within 0.02 of float32's and every hidden state
keeps cosine >= 0.99 with float32's (a random-init model: real checkpoints are usually closer)."""


def measure_gpu(loaded: LoadedModel, size: str, tokens: int = 512) -> tuple[float, dict]:
    """P4: the full analysis at `tokens` tokens under both masks on the GPU (ms), and half precision vs float32."""
    enc = encode(loaded, text_of(tokens))
    ms = 1000 * median_seconds(lambda: analyze_encoding(loaded, enc), repeats=10, warmup=3)
    reference = analyze_encoding(loaded, enc)
    agreement = {}
    for dtype in ("float16", "bfloat16"):
        agreement[dtype] = half_agreement(reference, analyze_encoding(random_model(size, loaded.device.type, dtype), enc))
    return ms, agreement


def half_agreement(reference, half) -> dict:
    """How far a half-precision analysis is from float32's, and whether it is within HALF_TOLERANCE."""
    import numpy as np

    from .metrics import cosine

    attention = max(float(np.abs(half.runs[k].attentions - reference.runs[k].attentions).max()) for k in reference.runs)
    cosines = []
    for k in reference.runs:
        a, b = reference.runs[k].hidden_states, half.runs[k].hidden_states
        cosines.append(float(cosine(a, b).min()))
    hidden = min(cosines)
    return {
        "attention_max_abs_diff": attention,
        "hidden_min_cosine": hidden,
        "within_tolerance": attention <= HALF_TOLERANCE["attention"] and hidden >= HALF_TOLERANCE["hidden_cosine"],
    }


def main(args) -> int:
    result = run_bench(
        args.model_config, args.device, args.repeats, browser=not args.no_browser, analyses=args.analyses,
        p4_size=args.p4_model_config, dtype=getattr(args, "dtype", "auto"), families=getattr(args, "families", False),
        compile=compiled.setting(getattr(args, "compile", None) or None),
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
