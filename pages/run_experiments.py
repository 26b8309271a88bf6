import numpy as np
import pandas as pd
import streamlit as st
import torch

import lab_ui
from bertlab import experiments, figures, masks

KINDS = ["Ablate heads", "Knock out attention", "Custom mask", "Head importance", "Attribution"]

lab_ui.header(
    "Experiments",
    "Attention weights alone do not say what a head *does*: remove it and watch what changes. Each experiment "
    "runs your text twice in **one batched pass**: row 0 as BERT computes it, row 1 with the change (heads "
    "removed, attention edges blocked, another mask), so any difference is the change's.",
    "which heads a [MASK]'s guess really needs (head importance), and whether attribution (gradients) and "
    "attention point at the same input tokens.",
)
loaded = lab_ui.model()
result = lab_ui.analysis(loaded)
tokens, info, encoding = result.tokens, loaded.info, result.encoding
labels = lab_ui.token_labels(tokens)
key = lab_ui.encoding_key(encoding)
kind = st.pills("Experiment", KINDS, key="experiment", default=KINDS[0], bind="query-params") or KINDS[0]
has_mlm = "mlm" in info.heads_available
window = None if kind == "Head importance" else lab_ui.token_window(tokens)
# before/after attention of every layer is kept (float16) up to 128 tokens; past that it would crowd the cache
SIDE_BY_SIDE = len(tokens) <= 128
if not result.mask_positions and has_mlm:
    st.caption("Tip: put `[MASK]` in the text to see how each experiment moves BERT's guess.")


def show_effect(effect: experiments.Effect, label: str) -> None:
    """Before and after, side by side: MLM guesses, the hidden-state change, one head's attention."""
    if effect.mlm:
        for m in effect.mlm:
            lab_ui.chart(
                figures.prediction_bars({"before": m.before, "after": m.after},
                                        f"[MASK] at {m.position}: log P(“{m.before[0].token}”) {m.change:+.3f}"),
                key=f"effect_mlm_{m.position}",
            )
    elif not has_mlm:
        st.caption(f"'{info.name}' has no masked-LM head: the hidden states below still show what the change did.")
    lab_ui.chart(figures.change_heatmap(tokens, effect.hidden_cosine, f"how far {label} moved each token: 1 − cosine(before, after)", window),
                 key="effect_change")
    if effect.attentions is None:
        st.caption("Attention before and after is drawn up to 128 tokens; this text is longer.")
    else:
        layer, head = lab_ui.layer_head(result, prefix="x_")
        if effect.kind == "ablate":
            st.caption("An ablated head still computes its weights (its pattern is unchanged); what it no longer does is "
                       "pass its output on. Look at the layers after it.")
        left, right = st.columns(2)
        before, after = (effect.attentions[i, layer, head].astype(np.float32) for i in (0, 1))
        top = figures.shared_zmax([before, after], window)  # one colour scale for the two
        with left:
            lab_ui.chart(figures.attention_heatmap(tokens, before, f"before: layer {layer}, head {head}", window=window, zmax=top),
                         key="effect_before")
        with right:
            lab_ui.chart(figures.attention_heatmap(tokens, after, f"after: layer {layer}, head {head}", window=window, zmax=top),
                         key="effect_after")


def needs_a_guess(what: str):
    """Head importance and attribution explain a [MASK]'s guess. Without an MLM head: why, and random weights to
    switch to (as the Masked LM page offers); without a [MASK] in the text: mask one of its tokens here. Returns
    the analysis, encoding and cache key to explain."""
    if not has_mlm:
        st.info(f"{what}: it needs a checkpoint with a masked-LM head. Ablate heads, Knock out attention and Custom mask "
                "work with any model: they show how far each token's hidden state moves.", icon="🧪")
        lab_ui.missing_head(loaded, "mlm")
        lab_ui.notes(result)
        st.stop()
    if result.mask_positions:
        return result, encoding, key
    st.caption(f"{what}; the text has no [MASK], so pick a token to mask (or type [MASK] in the text).")
    words = [t.position for t in tokens if not t.special] or [0]
    chosen = lab_ui.token_picker("Mask this token", tokens, key="exp_masked", default=words[0],
                                 window=window if window is not None else None)
    masked = lab_ui.analysis(loaded, masked=(chosen,), top_k=result.top_k)
    return masked, masked.encoding, lab_ui.encoding_key(masked.encoding)


if kind == "Ablate heads":
    options = [f"{l}.{h}" for l in range(info.layers) for h in range(info.heads)]
    c1, c2 = st.columns([4, 1])
    chosen = c1.multiselect("Heads to remove (layer.head)", options, key="heads", bind="query-params", placeholder="e.g. 3.5",
                            help="Each chosen head's output is removed before the layer's output projection.")
    mode = c2.radio("Replace by", ["zero", "mean"], key="ablate_mode", bind="query-params", horizontal=True,
                    help="zero: the head says nothing; mean: it says the same thing (its average over tokens) everywhere.")
    heads = [tuple(int(x) for x in h.split(".")) for h in chosen]
    lab_ui.chart(figures.head_grid(info.layers, info.heads, heads, title="removed heads (✕)"), key="ablate_grid")
    if heads:
        effect = lab_ui.compute(loaded, "ablate", (key, tuple(heads), mode),
                                lambda: experiments.ablate(loaded, encoding, heads, mode, top_k=result.top_k, attentions=SIDE_BY_SIDE))
        show_effect(effect, f"removing {len(heads)} head(s)")
    else:
        st.info("Choose one or more heads to remove.")
elif kind == "Knock out attention":
    query = lab_ui.token_picker("Query token (the one that may not look)", tokens, key="ko_query", window=window,
                                default=result.mask_positions[0] if result.mask_positions else 1)
    offered = lab_ui.offered_positions(len(tokens), window, st.session_state.get("ko_keys") or [])
    blocked = st.pills("…may not see these keys", offered, selection_mode="multi", key="ko_keys",
                       format_func=labels.__getitem__, bind="query-params")
    first, last = st.slider("In layers", 0, info.layers - 1, (0, info.layers - 1), key="ko_layers", bind="query-params")
    edges = [(query, k) for k in blocked or []]
    if edges:
        effect = lab_ui.compute(loaded, "knockout", (key, tuple(edges), first, last),
                                lambda: experiments.knockout(loaded, encoding, edges, range(first, last + 1), top_k=result.top_k, attentions=SIDE_BY_SIDE))
        show_effect(effect, f"blocking {len(edges)} edge(s)")
    else:
        st.info("Tap the keys the query token may not attend to.")
elif kind == "Custom mask":
    c1, c2 = st.columns([2, 1])
    preset = c1.selectbox("Mask", [p for p in masks.PRESETS if p != "bidirectional"], key="preset_mask", bind="query-params",
                          help="prefix-LM: segment A sees all of A, B is causal (needs a second sentence); window: ±w tokens; "
                               "blind: nobody may see one token.")
    width = c2.number_input("Window ±w", 0, 64, 2, key="window", disabled=preset != "window", bind="query-params")
    blind = lab_ui.token_picker("Token nobody may see", tokens, key="blind", default=1, window=window) if preset == "blind" else 0
    allowed = lab_ui.guarded(lambda: experiments.allowed_or_raise(loaded, encoding, preset, window=int(width), token=blind))
    if preset == "prefix-lm" and not result.encoding.pair:
        st.info("prefix-LM needs a second sentence (segment B) in the sidebar: with segment A alone every token "
                "sees every token, which is BERT's own bidirectional mask.")
    name = preset
    if len(tokens) <= 32:
        with st.expander("Draw your own: edit the mask (rows = queries, columns = keys)"):
            frame = pd.DataFrame(allowed.numpy(), index=labels, columns=labels)
            edited = st.data_editor(frame, key=f"draw_{preset}_{hash(key)}", width="stretch")
            drawn = torch.from_numpy(edited.to_numpy(dtype=bool).copy())
            if not torch.equal(drawn, allowed):
                allowed, name = drawn, "drawn"
    lab_ui.chart(figures.mask_matrix(tokens, allowed.numpy(), name, window), key="custom_mask")
    effect = lab_ui.compute(loaded, "mask", (key, name, allowed.numpy().tobytes()),
                            lambda: experiments.with_mask(loaded, encoding, allowed, name, top_k=result.top_k, attentions=SIDE_BY_SIDE))
    show_effect(effect, f"the {name} mask")
elif kind == "Head importance":
    result, encoding, key = needs_a_guess("Head importance ranks heads by how much a [MASK]'s guess needs them")
    position = st.selectbox("[MASK]", result.mask_positions, key="imp_position", format_func=lambda p: f"{labels[p]} at {p}",
                            bind="query-params")
    rows = info.layers * info.heads
    importance = lab_ui.long_work(loaded, "importance", (key, position),
                                  lambda progress, _stop: experiments.head_importance(loaded, encoding, position, progress=progress),
                                  f"Removing each of the {rows} heads in turn, in batched chunks", "heads")
    if importance is None:
        st.stop()
    top = importance.top_heads(5)
    st.markdown(f"Top guess **{importance.token}** (log P {importance.log_prob:.3f}). Heads it needs most: "
                + ", ".join(f"**{l}.{h}** ({d:+.3f})" for l, h, d in top))
    lab_ui.chart(figures.head_grid(info.layers, info.heads, [(l, h) for l, h, _ in top], importance.drop,
                                   "drop in log P(top guess) when the head alone is removed (✕: top 5)"), key="importance")
else:
    result, encoding, key = needs_a_guess("Attribution explains a [MASK]'s guess")
    c1, c2, c3 = st.columns(3)
    position = c1.selectbox("[MASK]", result.mask_positions, key="attr_position", format_func=lambda p: f"{labels[p]} at {p}",
                            bind="query-params")
    method = c2.selectbox("Method", list(experiments.METHODS), key="attr_method", bind="query-params",
                          format_func={"integrated_gradients": "integrated gradients", "grad_x_input": "gradient × input"}.get)
    steps = c3.slider("Steps", 8, 128, 32, 8, key="attr_steps", disabled=method != "integrated_gradients", bind="query-params")
    attribution = lab_ui.long_work(
        loaded, "attribute", (key, position, method, steps),
        lambda progress, _stop: experiments.attribute(loaded, encoding, position, method=method, steps=steps, progress=progress),
        "Attributing (Captum), in batched chunks", "steps")
    if attribution is None:
        st.stop()
    run = result.bidirectional
    rows = {
        f"{method.replace('_', ' ')} for “{attribution.target}”": attribution.scores,
        "attention of the [MASK] row, last layer (mean of heads)": run.attentions[-1, :, position].astype(np.float32).mean(0),
        "rollout of the [MASK] row through the last layer": run.rollout[-1, position],
    }
    lab_ui.chart(figures.attribution_chart(result.tokens, rows, f"what “{attribution.target}” at {position} rests on", window), key="attribution")
    if attribution.completeness:
        c = attribution.completeness
        ok = "✅" if c["relative_error"] <= 0.05 else "⚠️ more steps may help"
        st.caption(f"Completeness {ok}: the attributions sum to {c['sum']:.4f}; log P(input) − log P(baseline) = "
                   f"{c['expected']:.4f} (relative error {c['relative_error']:.1%}). Baseline: {experiments.BASELINE}; "
                   "so [CLS], [SEP] and [MASK] get exactly 0 here, whatever attention says.")
lab_ui.notes(result)
