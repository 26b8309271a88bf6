"""GPT-2 (Radford et al., 2019), the causal reference beside the encoders: a decoder trained to predict the next
token, causal by design; pre-norm (x + F(LayerNorm(x))) with a final LayerNorm; learned absolute positions;
byte-level BPE (`Ġ` marks a word start); its LM head is the token embedding, tied."""

from __future__ import annotations

import transformers

from . import Adapter, Embedding, Point, Sizes


def _heads(model, config, present: tuple[str, ...]) -> dict:
    final = model.transformer.ln_f
    return {"lm": lambda hidden: model.lm_head(final(hidden))} if "lm" in present else {}


ADAPTER = Adapter(
    name="gpt2",
    title="GPT-2",
    model_types=("gpt2",),
    teaches="a decoder: trained to predict the next token, causal by design",
    checkpoints=("gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "openai-community/gpt2", "distilbert/distilgpt2",
                 "openai-community/gpt2-medium"),
    layers="h",
    embedding=Embedding(parts={"embed.token": "wte", "embed.position": "wpe"}, out="drop", norm=None),
    points={
        "in": Point("", "in"),
        "attn.q": Point("attn.c_attn", "out", 0),
        "attn.k": Point("attn.c_attn", "out", 1),
        "attn.v": Point("attn.c_attn", "out", 2),
        "attn.mask": Point("attn", "mask"),
        "attn.pattern": Point("attn", "pattern"),
        "attn.context": Point("attn.c_proj", "in"),
        "attn.out": Point("attn.c_proj", "out"),
        "mid": Point("ln_2", "in"),
        "ffn.act": Point("mlp.c_proj", "in"),
        "ffn.out": Point("mlp.c_proj", "out"),
        "out": Point("", "out"),
    },
    norm_placement="pre",
    norms=("ln_1", "ln_2"),
    final_norm="ln_f",
    positions="absolute",
    causal=True,
    classes={"GPT2LMHeadModel": ("lm",)},
    probes={"lm": ()},  # tied to the token embedding: every GPT-2 checkpoint has it
    build_heads=_heads,
    pretraining={"gpt2": "GPT2LMHeadModel"},
    pieces="Ġ",
    sizes=lambda c: Sizes(c.n_layer, c.n_head, c.n_embd, c.n_inner or 4 * c.n_embd, c.n_positions),
    segments=lambda config: False,
    run_options={"use_cache": False},
    shapes={"gpt2": Sizes(12, 12, 768, 3072, 1024)},
    random_config=lambda s, words: transformers.GPT2Config(
        vocab_size=len(words), n_layer=s.layers, n_embd=s.hidden, n_head=s.heads, n_inner=s.ffn, n_positions=s.max_positions,
        bos_token_id=words.bos_token_id, eos_token_id=words.eos_token_id),
    vocabulary="gpt2",
    formula="h = x + Attention(LayerNorm(x)); out = h + MLP(LayerNorm(h)); a final LayerNorm before the head",
)
