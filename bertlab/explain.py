"""What a page says about the model that runs, in plain words, from the family's facts (its adapter, through
`ModelInfo`): BERT's own texts where BERT runs, the family's own where another does, so no page claims `##`
pieces for RoBERTa or a position embedding for ModernBERT. Pure functions (no Streamlit): the pages and the
lesson print what these return, and the tests read them.
"""

from __future__ import annotations

from .loading import ModelInfo

MARKERS = {
    "##": "a word it does not know whole is split into pieces, the later ones marked `##` (\"play ##ing\")",
    "Ġ": "text is read as bytes and merged into pieces (byte-level BPE); `Ġ` marks a piece that starts a new word "
         "(it stands for the space before it: \"ĠPlay\", \"ing\"), a piece without it continues the word before",
    "▁": "a piece that starts a new word begins with `▁` (SentencePiece's mark for the space before it: \"▁play\", "
         "\"ing\"); a piece without it continues the word before",
}


def frame(info: ModelInfo, cls: str | None, sep: str | None) -> str:
    """How the input is framed, in the tokenizer's own special tokens."""
    if info.mask_as_trained == "causal":
        return "There is no frame: a decoder reads the text as it is, one token after another."
    if not cls or not sep:
        return ""
    pair = f"`{cls}` A `{sep}{sep}` B `{sep}`" if info.family == "roberta" else f"`{cls}` A `{sep}` B `{sep}`"
    return f"The input is framed as `{cls}` sentence A `{sep}` (with a second sentence: {pair})."


def tokenization(info: ModelInfo, cls: str | None = None, sep: str | None = None) -> str:
    """The tokenization page's explanation for this model."""
    kind = {"##": "WordPiece", "Ġ": "byte-level BPE", "▁": "SentencePiece"}[info.pieces]
    segments = (" every token also carries a **segment** (A or B) and a **position**" if info.has_segments
                else f" every token carries a **position**; {info.title} has no segment embedding to tell sentence A from B")
    return (f"{info.title} does not read words: its {kind} vocabulary has {info.vocab_size:,} pieces, and "
            f"{MARKERS[info.pieces]}. {frame(info, cls, sep)}{segments} (0 to {info.max_positions - 1}).")


def continuation_legend(info: ModelInfo) -> str:
    what = {"##": "`##` continuation", "Ġ": "continues a word (no `Ġ`)", "▁": "continues a word (no `▁`)"}[info.pieces]
    segments = "Blue: segment A · orange: segment B" if info.has_segments else "Blue: first sentence · orange: second"
    return f"{segments} · grey: special tokens · dashed: {what} · red: unknown"


def positions(info: ModelInfo) -> str:
    """How positions enter this model."""
    return {
        "absolute": "a learned **position** embedding (one vector per position) is added to each token",
        "rotary": "no position vector is added: positions enter **inside attention**, where each query and key is "
                  "rotated by an angle that grows with its position, so q·k depends on how far apart they are",
        "relative": "no position vector is added: positions enter **inside attention**, where each score gets terms "
                    "for the relative distance between query and key (content→position and position→content)",
    }[info.positions]


def embeddings(info: ModelInfo, steps: tuple[str, ...]) -> str:
    """The embeddings page's explanation: the lookups this model adds, in its own order."""
    names = {"token": "**token** embedding (what the piece is)", "segment": "**segment** embedding (A or B)",
             "position": "**position** embedding (where it is)"}
    lookups = [names[s] for s in steps if s in names]
    text = f"Before any attention, each token becomes one vector: its {' plus '.join(lookups)}"
    text += "." if len(lookups) > 1 else "."
    if "position" not in steps:
        text += f" In {info.title}, {positions(info)}."
    if info.family == "roberta" and "segment" in steps:
        text += " RoBERTa keeps BERT's token-type table with a single row: the same vector is added to every token."
    order = []
    if "projection" in steps and steps.index("projection") < steps.index("model_output") and "layernorm" in steps:
        order.append("the sum is **projected** to the hidden width, then goes through **LayerNorm**")
    elif "layernorm" in steps:
        order.append("the sum goes through **LayerNorm** (and dropout, off at inference)")
    else:
        order.append("the sum goes straight to the first layer (no LayerNorm here: each pre-norm layer normalizes its own input)")
    if "projection" in steps and steps.index("projection") > steps.index("model_output"):
        order.append(f"then a **projection** widens it from the embedding width to the hidden width {info.hidden_size} "
                     "(ALBERT's factorized embeddings: small lookups, one shared projection)")
    return text + " Then " + ", ".join(order) + "."


def layer(info: ModelInfo) -> str:
    """The layers page's explanation: the formula as this family computes it."""
    if info.norm_placement == "pre":
        text = ("Each layer is **pre-norm**: the attention sublayer reads a LayerNorm of the stream and adds its output "
                "A back, h = x + A(LayerNorm(x)); then the feed-forward block does the same, out = h + F(LayerNorm(h)). "
                "The stream itself is never normalized between layers; a final LayerNorm comes only before the head.")
    else:
        text = ("Each layer is **post-norm**: the attention sublayer's output A is added to the layer's input x and "
                "normalized, h = LayerNorm(x + A); then the feed-forward block's output F is added to h and normalized "
                "again, out = LayerNorm(h + F).")
    if info.shared_layers:
        text += f" All {info.layers} layers of {info.title} run with one layer's weights."
    if info.local_layers:
        local = ", ".join(str(layer) for layer, _ in info.local_layers)
        window = info.local_layers[0][1]
        which = f"Layers {local} attend" if len(info.local_layers) > 1 else f"Layer {local} attends"
        text += f" {which} **locally**: a token sees only the keys within ±{window} positions of it; the others globally."
    return text


def after_attention(info: ModelInfo) -> str:
    return "LayerNorm(x + A)" if info.norm_placement == "post" else "x + A"


def after_ffn(info: ModelInfo) -> str:
    return "LayerNorm(h + F)" if info.norm_placement == "post" else "h + F"


def scores(info: ModelInfo) -> str:
    """How one attention score is made in this family (the inside-a-head page)."""
    if info.positions == "relative":
        return ("DeBERTa's score is the sum of three terms, each divided by √(3·d_head): **content→content** q·k (as in "
                "BERT), **content→position** (the query against a learned vector for the distance to the key) and "
                "**position→content** (the key against a learned vector for the distance to the query).")
    if info.positions == "rotary":
        return ("Before the product, the query and every key are **rotated** by angles that grow with their positions "
                "(rotary positions): q·k after the rotation depends on the two tokens and on how far apart they are. "
                "It is divided by √d_head as in BERT.")
    return "The score of each key is q·k, **scaled** by 1/√d_head."
