"""bertlab: a real BERT's internals from one forward pass, as plain data a page or notebook can show.

    >>> from bertlab import load_model, analyze
    >>> bert = load_model("bert-base-uncased")        # or "minilm", the packaged offline encoder
    >>> a = analyze(bert, "The quick brown [MASK] jumps over the lazy dog.")
    >>> a.bidirectional.attentions.shape               # (layer, head, query, key)
"""

from .analysis import HEAD_STATS, Analysis, Classification, Embeddings, MaskRun, Prediction, analyze, analyze_encoding
from .errors import (
    BertlabError,
    InputError,
    MissingHeadError,
    ModelLoadError,
    NoMaskError,
    NotAnEncoderError,
    OfflineError,
    ResourceError,
    Stopped,
    TargetNotFoundError,
)
from .policy import BusyError, Policy, PolicyError
from .loading import DEFAULT_MODEL, PACKAGED_MODEL, LoadedModel, ModelInfo, load_model, pick_device, prefetch
from .masks import MASK_TYPES
from .mlm import Guess, MaskEach, fill_masks, logit_lens, mask_each_token, rank_guess
from .senses import Senses, senses
from .tokens import Encoding, Token, encode

__all__ = [
    "Analysis", "BertlabError", "Classification", "BusyError", "Policy", "PolicyError", "ResourceError", "DEFAULT_MODEL", "Embeddings", "Encoding", "HEAD_STATS", "InputError",
    "LoadedModel", "MASK_TYPES", "MaskEach", "MaskRun", "MissingHeadError", "ModelInfo", "ModelLoadError",
    "NoMaskError", "NotAnEncoderError", "OfflineError", "PACKAGED_MODEL", "Prediction", "Senses", "Stopped",
    "TargetNotFoundError", "Token", "analyze", "analyze_encoding", "encode", "fill_masks", "load_model",
    "logit_lens", "mask_each_token", "rank_guess", "Guess", "pick_device", "prefetch", "senses",
]


def __getattr__(name: str):
    """`bertlab.show` (the notebook views) on first use: plotly is imported only by those who draw."""
    if name == "show":
        import importlib

        return importlib.import_module(".show", __name__)
    raise AttributeError(f"module 'bertlab' has no attribute {name!r}")
