"""The lecture hall's model service (Ray Serve) and shared result cache (Redis): results equal the in-process
engine's, requests from many sessions share forward passes, a killed service replica is retried then restarted,
and two replicas compute a shared result once. Ray starts once for the module, on loopback, and stops."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
import torch

import bertlab
from bertlab import inside
from bertlab.analysis import analyze_encoding
from bertlab.tokens import encode

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from bertlab.hall import service  # noqa: E402
from bertlab.hall import client  # noqa: E402
from bertlab.hall.client import Hall, ModelServer, ServiceBusy  # noqa: E402
from bertlab.hall.shared import SharedResults, result_key  # noqa: E402
from class_fixtures import redis_server  # noqa: E402,F401

TOL = 1e-5
SENTENCES = ["The bank was robbed yesterday.", "I went to the bank to deposit money.", "The river bank was very scenic.",
             "A cat sat on the mat.", "Students ask good questions in a lecture hall.", "Hi there."]


@pytest.fixture(scope="module")
def hall_service():
    """Ray on loopback with two CPUs and no dashboard, the model service deployed on it (no HTTP proxy: the
    handle is the way in); stopped after the module."""
    ray.init(num_cpus=2, include_dashboard=False, namespace="bertlab", log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        serve.start(proxy_location="Disabled")
        serve.run(service.app(cpus=1), name=service.APP, route_prefix=None)
        yield ModelServer("auto")
    finally:
        serve.shutdown()
        ray.shutdown()


def same(a, b) -> float:
    a = a.float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float32)
    b = b.float().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float32)
    assert a.shape == b.shape
    return float(np.abs(a - b).max()) if a.size else 0.0


def test_analysis_through_the_service_equals_in_process(hall_service, minilm):
    encoding = encode(minilm, "The bank was robbed yesterday.", "Nobody was hurt.")
    here = analyze_encoding(minilm, encoding)
    there = hall_service.call("minilm", "analysis", encoding, 5, False)
    assert [t.id for t in there.tokens] == [t.id for t in here.tokens]
    for kind in here.runs:
        for a, b in zip(here.runs[kind].attention_layers, there.runs[kind].attention_layers):
            assert same(a, b) <= TOL
        assert same(here.runs[kind].hidden_tensor, there.runs[kind].hidden_tensor) <= TOL
        for stat in here.runs[kind].head_stats:
            assert same(here.runs[kind].head_stats[stat], there.runs[kind].head_stats[stat]) <= TOL
    assert same(here.embeddings.sum, there.embeddings.sum) <= TOL


def test_head_and_layer_steps_through_the_service(hall_service, minilm):
    encoding = encode(minilm, "I went to the bank to deposit money.")
    here = analyze_encoding(minilm, encoding)
    steps = inside.head_steps(minilm, here, 2, 3, 4, "causal")
    served = hall_service.call("minilm", "head", encoding, 2, 3, 4, "causal")
    for name in ("q", "k", "v", "scores", "weights", "output"):
        assert same(getattr(steps, name), getattr(served, name)) <= TOL, name
    layers = inside.layer_steps(minilm, encoding)
    served_layers = hall_service.call("minilm", "layers", encoding, "bidirectional")
    for name, norms in layers.layer_norms.items():
        assert same(norms, served_layers.layer_norms[name]) <= 1e-4, name  # norms of ~10-wide vectors: float32 sums
    with pytest.raises(bertlab.InputError, match="Layer 99 does not exist"):  # the engine's own message, no traceback
        hall_service.call("minilm", "head", encoding, 99, 0, 0, "bidirectional")


def test_mlm_through_the_service(hall_service, tiny_bert, tiny_bert_dir):
    encoding = encode(tiny_bert, "the [MASK] sat on the mat .")
    here = analyze_encoding(tiny_bert, encoding)
    there = hall_service.call(str(tiny_bert_dir), "analysis", encoding, 5, False)
    position = encoding.mask_positions[0]
    for kind in here.runs:
        mine, theirs = here.predictions(position)[kind], there.predictions(position)[kind]
        assert [p.id for p in mine] == [p.id for p in theirs] and len(mine) == 5
        assert max(abs(p.prob - q.prob) for p, q in zip(mine, theirs)) <= TOL
    assert here.nsp is not None and abs(here.nsp - there.nsp) <= TOL


def test_concurrent_requests_share_forward_passes(hall_service, minilm):
    """K sessions asking at once (different sentences, different lengths) run in fewer than K passes, and each
    still gets its own input's analysis."""
    encodings = [encode(minilm, s) for s in SENTENCES]
    before = hall_service.stats()
    handle = hall_service.handle().options(multiplexed_model_id="minilm")
    handle.analysis.remote(encodings[0]).result(timeout_s=60)  # the model loaded in the replica first
    before = hall_service.stats()
    responses = [handle.analysis.remote(e, 5, False) for e in encodings]
    results = [r.result(timeout_s=120) for r in responses]
    after = hall_service.stats()
    assert after["requests"] - before["requests"] == len(encodings)
    passes = after["passes"] - before["passes"]
    assert 1 <= passes < len(encodings), passes
    for encoding, result in zip(encodings, results):
        alone = analyze_encoding(minilm, encoding)
        assert same(alone.bidirectional.hidden_tensor, result.bidirectional.hidden_tensor) <= TOL


def test_a_killed_service_replica_is_busy_then_restarted(hall_service, minilm):
    encoding = encode(minilm, "A cat sat on the mat.")
    pid = hall_service.stats()["pid"]
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if service.DEPLOYMENT in a["name"] and "REPLICA" in a["name"]]
    assert len(replicas) == 1
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=False)
    impatient = ModelServer("auto", retry_seconds=1)
    with pytest.raises(ServiceBusy, match="busy") as err:
        impatient.call("minilm", "analysis", encoding, 5)
    assert "Traceback" not in str(err.value) and "ray" not in str(err.value).lower()
    heard = []
    result = hall_service.call("minilm", "analysis", encoding, 5, on_busy=heard.append)  # waits for the restart
    assert heard == [client.BUSY_NOW] and "retrying" in heard[0]
    assert [t.id for t in result.tokens] == [t.id for t in encoding.tokens]
    assert hall_service.stats()["pid"] != pid


def test_the_app_hook_uses_the_service_and_remembers_encodings(hall_service, minilm):
    """Hall.fetch as lab_ui.cached calls it: the analysis comes from the service (with this process's ModelInfo),
    and a head step named only by token ids then goes to the service too."""
    hall = Hall(hall_service, None)
    local = []
    result = hall.fetch(minilm, "analysis", ("The river bank was very scenic.", "", (), 5), lambda: local.append(1))
    assert not local and result.model == minilm.info
    key = tuple((t.id, t.segment) for t in result.tokens)
    steps = hall.fetch(minilm, "head", (key, 1, 0, 2, "bidirectional"), lambda: local.append(1))
    assert not local and steps.layer == 1 and steps.weights.shape == (len(result.tokens),)


def test_two_replicas_compute_a_shared_result_once(redis_server):  # noqa: F811
    replicas = [SharedResults(redis_server.url), SharedResults(redis_server.url)]
    calls = []
    started = threading.Event()

    def compute():
        calls.append(1)
        started.set()
        return {"vector": np.arange(5.0)}

    key = result_key(("model", "cpu"), "analysis", ("a lesson sentence", "", (), 5))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: replicas[i % 2].fetch(key, compute), range(4)))
    assert len(calls) == 1
    assert all(np.array_equal(r["vector"], np.arange(5.0)) for r in results)
    other = result_key(("model", "cpu"), "analysis", ("another sentence", "", (), 5))
    replicas[1].fetch(other, compute)
    assert len(calls) == 2


def test_the_shared_cache_through_the_app_hook(redis_server, minilm):  # noqa: F811
    halls = [Hall(None, SharedResults(redis_server.url)) for _ in range(2)]
    ran = []

    def work():
        ran.append(1)
        return analyze_encoding(minilm, encode(minilm, "Shared by the whole hall.")).compact()

    inputs = ("Shared by the whole hall.", "", (), 5)
    first = halls[0].fetch(minilm, "analysis", inputs, work)
    second = halls[1].fetch(minilm, "analysis", inputs, work)
    assert len(ran) == 1
    assert same(first.bidirectional.hidden_tensor, second.bidirectional.hidden_tensor) == 0.0


def test_an_unreachable_result_cache_computes_here():
    """The shared cache is a help, not a dependency: with its Redis gone, a replica computes as it would alone."""
    from labtools.server import free_port

    shared = SharedResults(f"redis://127.0.0.1:{free_port()}/0")
    assert shared.fetch(result_key("m", "analysis", ("x",)), lambda: "computed here") == "computed here"
