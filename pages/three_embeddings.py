import numpy as np
import streamlit as st

import lab_ui
from bertlab import explain, figures

loaded = lab_ui.model()
info = loaded.info
result = lab_ui.analysis(loaded)
e = result.embeddings
parts = [name for name, _ in figures.embedding_parts(e)]
recomputed = figures.embedding_formula(e)
lab_ui.header(
    "The embeddings",
    explain.embeddings(info, e.steps) + (" This is exactly `BertEmbeddings` in the paper's order." if info.family == "bert" else
                                         f" This is {info.title}'s own embedding module, step by step."),
    ("the same word at two positions has the same token row but different position rows. " if "position" in e.steps else
     "the same word has the same vector wherever it stands: nothing here knows its position yet. ")
    + ("LayerNorm re-centres each token's vector and scales it to variance 1 before its own learned scale and shift, so "
       "how even the lengths come out depends on the model: the line under the bar chart measures it for this text. "
       if "layernorm" in e.steps else "")
    + f"The check below recomputes {recomputed} with the model's own modules and compares it with what the model feeds "
      "its first layer.",
)
c1, c2 = st.columns([1, 2])
c1.metric(
    "max |recomputed − model's own|",
    f"{e.max_abs_diff:.2e}",
    help=f"{' → '.join(parts)}, computed from the captured lookups with the model's own modules, against the model's own "
         "embedding output and the first layer's input.",
)
if e.max_abs_diff <= 1e-5:
    c2.success("The parts add up to exactly what the model feeds its first layer.")
else:
    c2.error(f"The recomputed {recomputed} differs from the model's own embedding output by up to {e.max_abs_diff:.2e}: this checkpoint's "
             "embedding layer does more than the steps drawn below, so they do not add up to what its first layer reads.")
window = lab_ui.token_window(result.tokens)
lab_ui.chart(figures.embedding_norms(result.tokens, e, window), key="norms")
shown = window or slice(None)
if "layernorm" in e.steps:
    summed, normed = (np.linalg.norm(v[shown], axis=-1) for v in (e.sum, e.layernorm))
    st.caption(f"Here the length ‖sum‖ ranges from {summed.min():.1f} to {summed.max():.1f} over the tokens shown "
               f"(largest ÷ smallest: {summed.max() / summed.min():.1f}), and ‖LayerNorm(sum)‖ from {normed.min():.1f} to "
               f"{normed.max():.1f} ({normed.max() / normed.min():.1f}).")
lab_ui.chart(figures.embeddings_heatmaps(result.tokens, e, window), key="embeddings")
lab_ui.notes(result)
