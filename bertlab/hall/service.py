"""The hall's model service: one Ray Serve deployment that holds models (multiplexed by checkpoint name, a bounded
number per replica) and runs the engine's own calls for every Streamlit replica of a hall.

Ray Serve does the serving (replicas, restarts, queues, back-pressure, batching, model multiplexing); this module
only says which engine call answers which request. Concurrent analyses of the same model are batched by
`@serve.batch` (bounded by padded tokens per batch, `batch_size_fn`) into ONE forward pass:
bertlab.analysis.analyze_encodings, the engine's own padded batch. Results go back through the handle as pickled
numpy / torch CPU tensors (binary, in Ray's object store), never as JSON; views that draw one head or one layer get
only that (`head`, `layers`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict

from ray import serve

import bertlab
from bertlab.analysis import Analysis, analyze_encodings
from bertlab import inside
from bertlab.tokens import Encoding

log = logging.getLogger("bertlab.hall")

APP = "bertlab"
"""The Serve application's name (the client looks the deployment up by it)."""
DEPLOYMENT = "ModelService"
BATCH_TOKENS = int(os.environ.get("BERTLAB_BATCH_TOKENS", "4096"))
"""Padded tokens (rows x longest input, both masks) in one forward pass: bounds a batch's memory and latency."""
MODELS_PER_REPLICA = int(os.environ.get("BERTLAB_MODELS_PER_REPLICA", "2"))
KEEP_MB = int(os.environ.get("BERTLAB_SERVICE_KEEP_MB", "512"))
"""Recent analyses a replica keeps, within this many MB, for the head steps that follow them (a page asks for the
analysis first; a 512-token BERT-base analysis alone is ~200 MB)."""


def padded_tokens(items: list[tuple]) -> int:
    """What a batch of (model, encoding, top_k) costs: rows x the longest input x 2 masks (one row never counts as
    more than the bound, so a 512-token input still runs, alone)."""
    cost = len(items) * max(len(item[1]) for item in items) * 2
    return min(cost, BATCH_TOKENS) if len(items) == 1 else cost


@serve.deployment(name=DEPLOYMENT, max_ongoing_requests=64)
class ModelService:
    """Engine calls on models loaded by bertlab's own loader, named by `multiplexed_model_id` (the checkpoint
    name the app's sidebar shows)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.passes = 0  # forward passes run for analyses (batching is counted, not assumed)
        self.requests = 0
        self.recent: OrderedDict = OrderedDict()

    @serve.multiplexed(max_num_models_per_replica=MODELS_PER_REPLICA)
    async def model(self, name: str) -> bertlab.LoadedModel:
        loaded = await asyncio.to_thread(bertlab.load_model, name, self.device)
        log.info("model service: loaded %s", loaded.info.name)
        return loaded

    async def _loaded(self) -> bertlab.LoadedModel:
        return await self.model(serve.get_multiplexed_model_id())

    async def analysis(self, encoding: Encoding, top_k: int = 5, compact: bool = True) -> Analysis:
        """One input's analysis, computed in a batch with whatever other sessions asked for at the same moment."""
        loaded = await self._loaded()
        self.requests += 1
        result = await self._batched((loaded, encoding, top_k))
        return result.compact() if compact else result

    @serve.batch(max_batch_size=BATCH_TOKENS, batch_wait_timeout_s=0.02, batch_size_fn=padded_tokens)
    async def _batched(self, items: list[tuple]) -> list[Analysis]:
        results: list[Analysis | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, (loaded, _encoding, top_k) in enumerate(items):
            groups.setdefault((id(loaded), top_k), []).append(i)
        for (_model, top_k), rows in groups.items():
            loaded = items[rows[0]][0]
            self.passes += 1
            done = await asyncio.to_thread(analyze_encodings, loaded, [items[i][1] for i in rows], top_k)
            for i, analysis in zip(rows, done):
                results[i] = analysis
                self._keep(loaded, analysis)
        return results

    def _keep(self, loaded: bertlab.LoadedModel, analysis: Analysis) -> None:
        key = (loaded.info, _ids(analysis.encoding))
        self.recent[key] = analysis.compact()  # head steps read the hidden states, which stay float32
        self.recent.move_to_end(key)
        while len(self.recent) > 1 and sum(a.nbytes for a in self.recent.values()) > KEEP_MB * 2**20:
            self.recent.popitem(last=False)

    async def _analysis_of(self, loaded: bertlab.LoadedModel, encoding: Encoding) -> Analysis:
        hit = self.recent.get((loaded.info, _ids(encoding)))
        return hit if hit is not None else await self._batched((loaded, encoding, 5))

    async def head(self, encoding: Encoding, layer: int, head: int, query: int, mask: str = "bidirectional") -> inside.HeadSteps:
        """One query's way through one head (small vectors only), from the analysis this replica computed."""
        loaded = await self._loaded()
        analysis = await self._analysis_of(loaded, encoding)
        return await asyncio.to_thread(inside.head_steps, loaded, analysis, layer, head, query, mask)

    async def layers(self, encoding: Encoding, mask: str = "bidirectional") -> inside.LayerSteps:
        """Every layer's sublayers for one input (norms and float16 activations: what the residual-stream view draws)."""
        loaded = await self._loaded()
        return await asyncio.to_thread(inside.layer_steps, loaded, encoding, mask)

    async def senses(self, target: str, sentences: tuple[str, ...]) -> bertlab.Senses:
        """A word across sentences: the engine's own one padded pass."""
        loaded = await self._loaded()
        return await asyncio.to_thread(bertlab.senses, loaded, target, list(sentences))

    async def info(self) -> bertlab.ModelInfo:
        return (await self._loaded()).info

    def stats(self) -> dict:
        """Forward passes and analysis requests so far in this replica, and its process id (tests and the operator)."""
        return {"passes": self.passes, "requests": self.requests, "pid": os.getpid()}


def _ids(encoding: Encoding) -> tuple:
    return tuple((t.id, t.segment) for t in encoding.tokens)


def app(device: str = "cpu", replicas: int = 1, cpus: float = 1.0) -> serve.Application:
    """The Serve application a hall runs (`serve.run(app(), name=APP)`): `replicas` copies of the service."""
    return ModelService.options(num_replicas=replicas, ray_actor_options={"num_cpus": cpus}).bind(device)
