import numpy as np
import streamlit as st

import lab_ui
from bertlab import figures

lab_ui.header(
    "The three embeddings",
    "Before any attention, each token becomes one vector: its **token** embedding (what the piece is), plus "
    "a **segment** embedding (A or B), plus a **position** embedding (where it is; learned, one per position "
    "up to 512). The sum goes through **LayerNorm** (and dropout, off at inference). This is exactly "
    "`BertEmbeddings` in the paper's order; DistilBERT has no segment embeddings.",
    "the same word at two positions has the same token row but different position rows. LayerNorm re-centres "
    "each token's sum and scales it to variance 1 before its own learned scale and shift, so how even the lengths "
    "come out depends on the model: the line under the bar chart measures it for this text. The check below "
    "recomputes LayerNorm(token + segment + position) and compares it with the model's own embedding output.",
)
result = lab_ui.analysis()
e = result.embeddings
c1, c2 = st.columns([1, 2])
c1.metric(
    "max |LayerNorm(sum) − model's embedding output|",
    f"{e.max_abs_diff:.2e}",
    help="Our sum of the three captured embeddings, passed through the model's own LayerNorm, against hidden state 0.",
)
if e.max_abs_diff <= 1e-5:
    c2.success("The three parts add up to exactly what the model feeds its first layer.")
else:
    c2.error(f"LayerNorm(token + segment + position) differs from the model's own embedding output by up to "
             f"{e.max_abs_diff:.2e}: this checkpoint's embedding layer does more than BERT's three lookups and LayerNorm, "
             "so the parts drawn below do not add up to what its first layer reads.")
window = lab_ui.token_window(result.tokens)
lab_ui.chart(figures.embedding_norms(result.tokens, e, window), key="norms")
shown = window or slice(None)
summed, normed = (np.linalg.norm(v[shown], axis=-1) for v in (e.sum, e.layernorm))
st.caption(f"Here the length ‖sum‖ ranges from {summed.min():.1f} to {summed.max():.1f} over the tokens shown "
           f"(largest ÷ smallest: {summed.max() / summed.min():.1f}), and ‖LayerNorm(sum)‖ from {normed.min():.1f} to "
           f"{normed.max():.1f} ({normed.max() / normed.min():.1f}).")
lab_ui.chart(figures.embeddings_heatmaps(result.tokens, e, window), key="embeddings")
lab_ui.notes(result)
