"""Command line: `bertlab analyze|nsp|senses|probe-senses|neighbors|head|layers|ablate|knockout|importance|attribute|
influence|atlas|prefetch|bench|app` (or `python -m bertlab ...`). JSON output is a contract for scripts."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .errors import BertlabError
from .loading import DEFAULT_MODEL
from .masks import MASK_TYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertlab", description="Look inside a real BERT.")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local directory, or 'minilm' (packaged, offline)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
        p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                       help="auto: bfloat16 on a CUDA GPU, float32 elsewhere")
        p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                       help="run the hook-free parts of each layer compiled with torch.compile (default backend: inductor)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    analyze = sub.add_parser("analyze", help="tokens, MLM at each [MASK] under both masks, NSP")
    analyze.add_argument("text")
    analyze.add_argument("--pair", help="second sentence (segment B)")
    analyze.add_argument("--top-k", type=int, default=5)
    model_options(analyze)

    nsp = sub.add_parser("nsp", help="P(IsNext) of each second sentence after TEXT, in one padded batch")
    nsp.add_argument("text", help="the first sentence (segment A)")
    nsp.add_argument("seconds", nargs="*", metavar="SECOND", help="second sentences (segment B) to score")
    nsp.add_argument("--random", type=int, metavar="N", help="also score random sentence number N of bertlab's corpus")
    model_options(nsp)

    senses = sub.add_parser("senses", help="a word's similarity across sentences, per layer, under both masks")
    senses.add_argument("--target", required=True)
    senses.add_argument("sentences", nargs="+")
    model_options(senses)

    head = sub.add_parser("head", help="one head step by step for one query token: q, k, v, q·k, scaled, masked, softmax, output")
    head.add_argument("text")
    head.add_argument("--layer", type=int, required=True)
    head.add_argument("--head", type=int, required=True)
    head.add_argument("--query", type=int, required=True, help="token position of the query (0 is [CLS])")
    head.add_argument("--mask", default="bidirectional", choices=["bidirectional", "causal"])
    head.add_argument("--pair", help="second sentence (segment B)")
    model_options(head)

    layers = sub.add_parser("layers", help="every layer sublayer by sublayer: norms of x, A, LayerNorm(A + x), F, output; top neurons")
    layers.add_argument("text")
    layers.add_argument("--mask", default="bidirectional", choices=["bidirectional", "causal"])
    layers.add_argument("--pair", help="second sentence (segment B)")
    model_options(layers)

    ablate = sub.add_parser("ablate", help="remove heads and compare with the unmodified run: MLM before/after, hidden-state cosine")
    ablate.add_argument("text")
    ablate.add_argument("--heads", required=True, help="L.H[,L.H...], e.g. 3.5,7.0 (layer.head, from 0)")
    ablate.add_argument("--mode", default="zero", choices=["zero", "mean"])
    ablate.add_argument("--pair", help="second sentence (segment B)")
    ablate.add_argument("--top-k", type=int, default=5)
    model_options(ablate)

    knockout = sub.add_parser("knockout", help="block query->key attention edges and compare with the unmodified run")
    knockout.add_argument("text")
    knockout.add_argument("--edge", action="append", required=True, help="Q:K token positions; repeat for more edges")
    knockout.add_argument("--layers", help="A-B (inclusive) or A,B,C; default: every layer")
    knockout.add_argument("--pair", help="second sentence (segment B)")
    knockout.add_argument("--top-k", type=int, default=5)
    model_options(knockout)

    importance = sub.add_parser("importance", help="drop in log P(top token) at a [MASK] when each head alone is ablated")
    importance.add_argument("text")
    importance.add_argument("--position", type=int, required=True)
    importance.add_argument("--mode", default="zero", choices=["zero", "mean"])
    importance.add_argument("--pair", help="second sentence (segment B)")
    model_options(importance)

    attribute = sub.add_parser("attribute", help="attribute a [MASK]'s prediction (or IsNext) to the input tokens (Captum)")
    attribute.add_argument("text")
    attribute.add_argument("--position", type=int, help="the [MASK] position; omit with --pair to explain IsNext")
    attribute.add_argument("--token", help="the token to explain (default: the top prediction)")
    attribute.add_argument("--method", default="integrated_gradients", choices=["grad_x_input", "integrated_gradients"])
    attribute.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (batched)")
    attribute.add_argument("--pair", help="second sentence (segment B)")
    model_options(attribute)
    probe = sub.add_parser("probe-senses", help="at which layer do senses separate? leave-one-out 1-NN over a corpus")
    probe.add_argument("corpus", nargs="?", help="a .tsv/.csv with word, sense, sentence (default: the shipped corpus)")
    model_options(probe)

    near = sub.add_parser("neighbors", help="the corpus sentences whose word is nearest to the word in TEXT")
    near.add_argument("text")
    near.add_argument("--target", required=True, help="the word to look at (in TEXT and in the corpus)")
    near.add_argument("--corpus", help=".tsv/.csv with word, sense, sentence, or .txt one sentence per line (default: shipped)")
    near.add_argument("--layer", type=int, default=-1, help="0 = embedding output; negative counts from the top (default: last)")
    near.add_argument("--mask", default="bidirectional", choices=MASK_TYPES)
    near.add_argument("--k", type=int, default=5)
    model_options(near)

    index = sub.add_parser("index", help="build a corpus index and keep it in the cache folder (BERTLAB_CACHE_DIR)")
    index.add_argument("corpus", nargs="?", help="a .tsv/.csv with word, sense, sentence (default: the shipped corpus)")
    model_options(index)

    _influence_parsers(sub, model_options)

    prefetch = sub.add_parser("prefetch", help="download checkpoints into the local cache for offline use")
    prefetch.add_argument("models", nargs="+")

    bench = sub.add_parser("bench", help="speed and size against references measured in the same run")
    bench.add_argument("--model-config", default="bert-base", help="bert-base, bert-large, ... (random-init weights)")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                       help="auto: bfloat16 on a CUDA GPU, float32 elsewhere")
    bench.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                       help="compile the hook-free parts of each layer (torch.compile; default backend: inductor)")
    bench.add_argument("--families", action="store_true", help="also time every family at one shape (p1_family_ratios)")
    bench.add_argument("--repeats", type=int, default=7)
    bench.add_argument("--analyses", type=int, default=200, help="distinct analyses for the memory figure (0: skip)")
    bench.add_argument("--no-browser", action="store_true", help="skip the Chromium figures (P3, P5)")
    bench.add_argument("--p4-model-config", default="bert-large", help="the shape p4_host_bytes / p4_view_bytes are counted with")
    bench.add_argument("--json", action="store_true")

    from .classroom.cli import add_parser as add_class_parser  # the live class: `bertlab class export CODE --json`

    add_class_parser(sub)

    sub.add_parser(
        "app",
        help="start the Streamlit app (further options go to `streamlit run`, e.g. --server.port 8502)",
        description="Start the Streamlit app on http://localhost:8501. Options after `app` go to `streamlit run`.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "app":
        return run_app(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return _run(args)
    except BertlabError as err:
        print(f"error: {err}", file=sys.stderr)
        if getattr(err, "hint", ""):
            print(f"hint: {err.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one clear line, never a traceback, unless asked for
        if os.environ.get("BERTLAB_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "class":  # the live class's store: no model
        from .classroom.cli import run as run_class

        return run_class(args)
    from .loading import load_model, prefetch

    if args.command == "bench":
        from .bench import main as bench_main

        return bench_main(args)
    if args.command == "prefetch":
        for name, path in zip(args.models, prefetch(args.models)):
            print(f"{name}: {path}")
        return 0
    if args.command in ("probe-senses", "neighbors", "index"):
        return _corpus_command(args)
    if args.command in ("influence", "atlas"):
        return _influence_command(args)
    if args.top_k < 1 if args.command == "analyze" else False:
        raise BertlabError("--top-k must be at least 1.")
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, compile=getattr(args, 'compile', None))
    if loaded.info.notice:
        print(f"notice: {loaded.info.notice}", file=sys.stderr)
    if args.command in ("head", "layers"):
        return _inside(loaded, args)
    if args.command in ("ablate", "knockout", "importance", "attribute"):
        return _experiment(loaded, args)
    if args.command == "nsp":
        return _next_sentence(loaded, args)
    if args.command == "analyze":
        from .analysis import analyze

        result = analyze(loaded, args.text, args.pair, top_k=args.top_k)
        data = result.to_dict()
        print(json.dumps(data) if args.json else _analysis_text(data))
    else:
        from .senses import senses

        result = senses(loaded, args.target, args.sentences)
        data = result.to_dict()
        print(json.dumps(data) if args.json else _senses_text(data))
    return 0


def _next_sentence(loaded, args: argparse.Namespace) -> int:
    from .nsp import next_sentence, random_sentence

    seconds = list(args.seconds)
    if args.random is not None:
        seconds.append(random_sentence(avoid=[args.text, *seconds], seed=args.random))
    if not seconds:
        raise BertlabError("Give at least one second sentence, or --random N for one from bertlab's corpus.")
    result = next_sentence(loaded, args.text, seconds)
    data = {
        "model": loaded.info.name,
        "text": args.text,
        "pairs": [
            {"second": s, "is_next": round(float(p), 6), "random": args.random is not None and i == len(seconds) - 1, "truncated": cut}
            for i, (s, p, cut) in enumerate(zip(result.seconds, result.is_next, result.truncated))
        ],
    }
    if args.json:
        print(json.dumps(data))
    else:
        for pair in data["pairs"]:
            print(f"P(IsNext) {pair['is_next']:.3f}  {pair['second']}" + ("  (random)" if pair["random"] else ""))
    return 0


def _inside(loaded, args: argparse.Namespace) -> int:
    from .analysis import analyze
    from .inside import head_steps, layer_steps
    from .tokens import encode

    if args.command == "head":
        result = analyze(loaded, args.text, args.pair, mask_types=(args.mask,))
        data = head_steps(loaded, result, args.layer, args.head, args.query, args.mask).to_dict()
        if args.json:
            print(json.dumps(data))
        else:
            print(f"layer {data['layer']}, head {data['head']}, query {data['query']} ({data['tokens'][data['query']]}), {data['mask']}")
            print(f"{'key':>14} {'q·k':>9} {'scaled':>9} {'masked':>9} {'weight':>8}")
            for token, raw, scaled, masked, weight in zip(data["tokens"], data["scores"], data["scaled"], data["masked"], data["weights"]):
                shown = "blocked" if masked is None else f"{masked:9.3f}"
                print(f"{token[:14]:>14} {raw:9.3f} {scaled:9.3f} {shown:>9} {weight:8.4f}")
        return 0
    steps = layer_steps(loaded, encode(loaded, args.text, args.pair), args.mask)
    data = steps.to_dict()
    if args.json:
        print(json.dumps(data))
    else:
        h = "LayerNorm(x + A)" if loaded.info.norm_placement == "post" else "x + A"
        print(f"{loaded.info.title}, {loaded.info.norm_placement}-norm: {loaded.adapter.formula}")
        print(f"mean norms per layer ({args.mask}): x, A, h = {h}, F, output")
        for entry in data["layers"]:
            means = [sum(entry[k]) / len(entry[k]) for k in ("input_norm", "attention_norm", "after_attention_norm", "ffn_norm", "output_norm")]
            print(f"layer {entry['layer']:2d}: " + "  ".join(f"{m:8.3f}" for m in means))
    return 0


def parse_heads(text: str) -> list[tuple[int, int]]:
    """'3.5,7.0' -> [(3, 5), (7, 0)]."""
    try:
        return [tuple(int(x) for x in item.strip().split(".")) for item in text.split(",") if item.strip()]  # type: ignore[misc]
    except ValueError:
        raise BertlabError(f"--heads takes L.H[,L.H...] (layer.head, e.g. 3.5,7.0), not '{text}'.") from None


def parse_layers(text: str | None) -> list[int] | None:
    """'2-4' -> [2, 3, 4]; '1,3' -> [1, 3]; None -> every layer."""
    if not text:
        return None
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-", 1))
            return list(range(a, b + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise BertlabError(f"--layers takes A-B or A,B,C (layer numbers from 0), not '{text}'.") from None


def parse_edges(items: list[str]) -> list[tuple[int, int]]:
    try:
        return [tuple(int(x) for x in item.split(":", 1)) for item in items]  # type: ignore[misc]
    except ValueError:
        raise BertlabError(f"--edge takes Q:K (query and key token positions), not '{' '.join(items)}'.") from None


def _experiment(loaded, args: argparse.Namespace) -> int:
    from . import experiments
    from .tokens import encode

    encoding = encode(loaded, args.text, args.pair)
    if args.command == "ablate":
        heads = parse_heads(args.heads)
        if any(len(h) != 2 for h in heads):
            raise BertlabError(f"--heads takes L.H[,L.H...] (layer.head, e.g. 3.5,7.0), not '{args.heads}'.")
        data = experiments.ablate(loaded, encoding, heads, args.mode, top_k=args.top_k).to_dict()
    elif args.command == "knockout":
        edges = parse_edges(args.edge)
        if any(len(e) != 2 for e in edges):
            raise BertlabError("--edge takes Q:K (query and key token positions).")
        data = experiments.knockout(loaded, encoding, edges, parse_layers(args.layers), top_k=args.top_k).to_dict()
    elif args.command == "importance":
        data = experiments.head_importance(loaded, encoding, args.position, args.mode).to_dict()
    else:
        data = experiments.attribute(loaded, encoding, args.position, args.token, args.method, args.steps).to_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    if args.command in ("ablate", "knockout"):
        done = data.get("heads") or data.get("edges")
        print(f"{args.command} {done}: lowest hidden-state cosine per layer " + " ".join(f"{min(row):.3f}" for row in data["hidden_cosine"]))
        for entry in data["mlm"]:
            before = ", ".join(f"{p['token']} {p['prob']:.3f}" for p in entry["before"])
            after = ", ".join(f"{p['token']} {p['prob']:.3f}" for p in entry["after"])
            print(f"[MASK] at {entry['position']}: before {before} | after {after}")
    elif args.command == "importance":
        print(f"top token at {data['position']}: {data['token']} (log P {data['log_prob']:.3f}); drop when each head is ablated:")
        for layer, row in enumerate(data["drop"]):
            print(f"layer {layer:2d}: " + " ".join(f"{v:6.3f}" for v in row))
    else:
        print(f"{data['method']} for {data['target']}:")
        for token, score in zip(data["tokens"], data["scores"]):
            print(f"{token:>14} {score:9.4f}")
        if data["completeness"]:
            c = data["completeness"]
            print(f"completeness: sum {c['sum']:.4f} vs f(input) - f(baseline) {c['expected']:.4f} (relative error {c['relative_error']:.1%})")
    return 0


def app_path() -> Path:
    """The app's main script: inside the installed package, or the checkout itself for `pip install -e .`
    and a plain clone (pyproject.toml maps the package bertlab._app onto the repository root)."""
    try:
        spec = importlib.util.find_spec("bertlab._app")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "app.py"
    return Path(__file__).resolve().parent.parent / "app.py"  # a clone that was never installed


def run_app(streamlit_args: list[str]) -> int:
    """`streamlit run` on the installed app.py, with the same defaults as `./lab app`."""
    script = app_path()
    if not script.is_file():
        print(f"error: the app is not installed with this bertlab (no {script}).", file=sys.stderr)
        return 2
    # lab_serve.py (beside app.py) is `streamlit run app.py` with st.navigation in charge from the first run
    command = [sys.executable, str(script.with_name("lab_serve.py")), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1", **os.environ}
    if os.name == "posix":  # become Streamlit, so a signal to `bertlab app` (Ctrl-C, a service manager) reaches it
        os.execve(sys.executable, command + streamlit_args, env)
    try:
        return subprocess.call(command + streamlit_args, env=env)
    except KeyboardInterrupt:
        return 130


def _analysis_text(data: dict) -> str:
    model = data["model"]
    lines = [f"{model['name']}: {model.get('title') or model['family']}, {model['layers']} layers, {model['heads']} heads, "
             f"hidden {model['hidden_size']}, {model['norm_placement']}-norm, {model['positions']} positions, on {model['device']}"]
    lines.append("tokens: " + " ".join(f"{t['text']}({t['id']})" for t in data["tokens"]))
    for note in data["notes"]:
        lines.append(f"note: {note}")
    for entry in data["mlm"]:
        for kind in ("bidirectional", "causal"):
            guesses = ", ".join(f"{p['token']} {p['prob']:.3f}" for p in entry[kind])
            lines.append(f"[MASK] at {entry['position']} ({kind}): {guesses}")
    if data["nsp"]:
        lines.append(f"IsNext: {data['nsp']['is_next']:.3f}")
    if data.get("replaced"):
        shown = ", ".join(f"{r['token']} {r['prob']:.2f}" for r in data["replaced"])
        lines.append(f"P(replaced) per token (ELECTRA's discriminator): {shown}")
    for entry in data.get("next_token") or []:
        guesses = ", ".join(f"{p['token']} {p['prob']:.3f}" for p in entry["top"])
        lines.append(f"after {entry['token']} ({entry['position']}), next: {guesses}")
    return "\n".join(lines)


def _senses_text(data: dict) -> str:
    lines = [f"'{data['target']}' in {len(data['sentences'])} sentences, last layer cosine similarity:"]
    for kind in ("bidirectional", "causal"):
        lines.append(f"{kind}:")
        for row in data[kind][-1]:
            lines.append("  " + " ".join(f"{v:6.3f}" for v in row))
    return "\n".join(lines)


def _corpus_command(args: argparse.Namespace) -> int:
    """probe-senses, neighbors and index: the corpus is read (and refused) before the model loads; the index comes
    from the cache folder when one was built before (bertlab.corpus.stored_index)."""
    import time

    from . import corpus as corpora
    from .loading import load_model

    if args.command == "neighbors" and args.k < 1:
        raise BertlabError("--k must be at least 1.")
    corpus = corpora.load_corpus(args.corpus)
    if args.command == "neighbors":
        corpus = corpus.select(args.target)  # only the target's sentences need indexing
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, compile=getattr(args, 'compile', None))
    if loaded.info.notice:
        print(f"notice: {loaded.info.notice}", file=sys.stderr)
    began = time.perf_counter()
    index = corpora.stored_index(loaded, corpus)
    if args.command == "index":
        path, _ = corpora.index_path(loaded, corpus)
        data = {"model": loaded.info.name, "corpus": corpus.name, "sentences": len(index), "path": str(path),
                "seconds": round(time.perf_counter() - began, 3), "mb": round(index.nbytes / 2**20, 2)}
        print(json.dumps(data) if args.json else f"{data['sentences']} sentences of {corpus.name} by {loaded.info.name}: "
              f"{path} ({data['mb']} MB, {data['seconds']} s)")
        return 0
    if index.skipped:
        print(f"notice: {len(index.skipped)} sentence(s) left out: the word lies beyond {loaded.max_length} tokens.", file=sys.stderr)
    if args.command == "probe-senses":
        data = corpora.probe(index).to_dict()
        print(json.dumps(data) if args.json else _probe_text(data))
    else:
        query = corpora.occurrence(loaded, args.text, args.target)
        data = corpora.neighbors(index, args.target, query, args.layer, args.mask, args.k).to_dict()
        print(json.dumps(data) if args.json else _neighbors_text(data))
    return 0


def _probe_text(data: dict) -> str:
    lines = [
        f"sense probe: {data['model']} on {data['corpus']} ({data['count']} sentences, {len(data['words'])} words), "
        "leave-one-out 1-nearest-neighbour accuracy",
        f"{'layer':>5}  {'bidirectional':>13}  {'causal':>6}  {'baseline':>8}",
    ]
    for layer in data["layers"]:
        lines.append(f"{layer:>5}  {data['bidirectional'][layer]:>13.3f}  {data['causal'][layer]:>6.3f}  {data['baseline']:>8.3f}")
    for order, by_mask in data.get("by_order", {}).items():
        settled = "before the word" if order == "before" else "only after the word"
        lines.append(f"sentences whose sense is settled {settled}: bidirectional "
                     + " ".join(f"{v:.2f}" for v in by_mask["bidirectional"]) + " | causal " + " ".join(f"{v:.2f}" for v in by_mask["causal"]))
    return "\n".join(lines)


def _neighbors_text(data: dict) -> str:
    lines = [f"'{data['target']}' at layer {data['layer']}, {data['mask']} mask; vote: {data['vote'] or '(unlabelled corpus)'}"]
    for n in data["neighbors"]:
        lines.append(f"  {n['cosine']:.3f}  {n['sense'] or '-':<12}  {n['sentence']}")
    return "\n".join(lines)


# --- influence and atlas (bertlab.influence, bertlab.atlas) -----------------------------------------------


def _influence_parsers(sub, model_options) -> None:
    influence = sub.add_parser("influence", help="six measures of each input token's influence on one position, and how they agree")
    influence.add_argument("text")
    influence.add_argument("--position", type=int, help="the position to explain (default: the first [MASK]; 0 is the first token)")
    influence.add_argument("--pair", help="second sentence (segment B)")
    influence.add_argument("--token", help="the token whose probability occlusion and IG explain (default: the top guess)")
    influence.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (batched)")
    model_options(influence)

    atlas = sub.add_parser("atlas", help="every head over a corpus: mass to specials, punctuation, neighbours; a map of heads")
    atlas.add_argument("corpus", nargs="?", help="a .tsv/.csv with a sentence column, or a .txt with one sentence per line (default: shipped)")
    atlas.add_argument("--mask", default="bidirectional", choices=MASK_TYPES)
    atlas.add_argument("--limit", type=int, help="only the first N sentences")
    model_options(atlas)


def _influence_command(args: argparse.Namespace) -> int:
    """influence and atlas: the input (a corpus file) is read and refused before the model loads."""
    from .loading import load_model

    if args.command == "atlas":
        from .atlas import atlas, load_sentences

        if args.limit is not None and args.limit < 1:
            raise BertlabError("--limit must be at least 1.")
        sentences, _, name = load_sentences(args.corpus)
        sentences = sentences[: args.limit] if args.limit else sentences
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, compile=getattr(args, 'compile', None))
    if loaded.info.notice:
        print(f"notice: {loaded.info.notice}", file=sys.stderr)
    if args.command == "atlas":
        data = atlas(loaded, sentences, args.mask, corpus=name).to_dict()
        print(json.dumps(data) if args.json else _atlas_text(data))
        return 0
    from .influence import influence
    from .tokens import encode

    result = influence(loaded, encode(loaded, args.text, args.pair), args.position, args.token, args.steps)
    data = result.to_dict()
    print(json.dumps(data) if args.json else _influence_text(data))
    return 0


def _influence_text(data: dict) -> str:
    from .influence import METHODS, NAMES

    target = f"log P(“{data['target']}”)" if data["target"] else "its last hidden state"
    lines = [f"influence on position {data['position']} ({data['token']}), {data['mask']} mask; occlusion and integrated "
             f"gradients explain {target}; occlusion puts {data['replacement']}",
             f"{'token':>14} " + " ".join(f"{NAMES[m][:11]:>11}" for m in METHODS)]
    for i, token in enumerate(data["tokens"]):
        lines.append(f"{token[:14]:>14} " + " ".join(f"{data['methods'][m][i]:11.3f}" for m in METHODS))
    lines.append(data["disagreement"])
    return "\n".join(lines)


def _atlas_text(data: dict) -> str:
    from .atlas import STATS

    lines = [f"{data['model']}: every head over {data['sentences']} sentences ({data['tokens']} tokens) of "
             f"{data['corpus']}, {data['mask']} mask; mean attention mass per token, entropy in nats",
             f"{'head':>6} " + " ".join(f"{s:>7}" for s in STATS) + "  dominant"]
    for h in data["heads"]:
        lines.append(f"{h['layer']:>3}.{h['head']:<2} " + " ".join(f"{h[s]:7.3f}" for s in STATS) + f"  {h['dominant']}")
    return "\n".join(lines)
