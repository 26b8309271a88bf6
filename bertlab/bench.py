"""`python -m bertlab bench`: speed and size against references measured in the same run.

Timing does not depend on weight values, so a random-init model of a published size (e.g. bert-base)
costs what the real one costs, and everything here runs offline. Ratios are medians of repeats.
Browser figures (P3, P5) come from a real `streamlit run` driven by Chromium; memory (P6) from the
app itself under Streamlit's AppTest.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

import torch

from .analysis import analyze_encoding
from .loading import LoadedModel, random_model
from .mlm import mask_each_token
from .tokens import encode

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "the students asked why the model could see both sides of every word while the other saw only the "
    "left side and so they typed new sentences into the laboratory to watch attention move between layers "
    "and heads as the teacher explained masked language modelling with examples from banks rivers and fish"
).split()
CHROMIUM = os.environ.get("BERTLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def text_of(tokens: int, mask: bool = True) -> str:
    """A sentence of exactly `tokens` WordPieces, [CLS] and [SEP] included (all WORDS are single pieces)."""
    words = [WORDS[i % len(WORDS)] for i in range(tokens - 2)]
    if mask:
        words[len(words) // 2] = "[MASK]"
    return " ".join(words)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sdpa_reference(loaded: LoadedModel) -> torch.nn.Module:
    """The same encoder weights with PyTorch's fused attention and no extra outputs: the floor."""
    config = copy.deepcopy(loaded.encoder.config)
    config._attn_implementation = "sdpa"
    ref = type(loaded.encoder)(config, add_pooling_layer=False)
    ref.load_state_dict(loaded.encoder.state_dict(), strict=False)
    return ref.to(loaded.device, loaded.dtype).eval()


def bare(ref: torch.nn.Module, ids: torch.Tensor) -> Callable[[], object]:
    ids = ids.to(next(ref.parameters()).device)

    def run() -> object:
        with torch.inference_mode():
            return ref(input_ids=ids)

    return run


def measure_engine(loaded: LoadedModel, repeats: int) -> dict:
    ref = sdpa_reference(loaded)
    enc64 = encode(loaded, text_of(64))
    assert len(enc64) == 64
    t_bare = median_seconds(bare(ref, enc64.input_ids), repeats)
    t_full = median_seconds(lambda: analyze_encoding(loaded, enc64), repeats)

    enc = encode(loaded, text_of(34, mask=False))  # 32 ordinary tokens
    rows = enc.input_ids.repeat(32, 1)
    t_batched = median_seconds(bare(ref, rows), repeats)
    t_each = median_seconds(lambda: mask_each_token(loaded, enc), repeats)
    t_loop = median_seconds(lambda: mask_each_token(loaded, enc, batch_size=1), max(1, repeats // 3))
    return {
        "p1_ratio": t_full / t_bare,
        "p2_ratio_vs_batched": t_each / t_batched,
        "p2_speedup_vs_loop": t_loop / t_each,
        "seconds": {
            "bare_sdpa_64": t_bare,
            "full_analysis_64": t_full,
            "batched_sdpa_32x34": t_batched,
            "mask_each_32": t_each,
            "mask_each_loop_32": t_loop,
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """A real `streamlit run app.py` on 127.0.0.1, stopped on exit."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> "AppServer":
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).status == 200:
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("streamlit did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_selector("[data-testid=stMainBlockContainer] h1", timeout=timeout_ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms)


def measure_browser(model: str) -> dict:
    """P3 (bytes the attention page receives) and P5 (typing to drawn views), in Chromium."""
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with AppServer() as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        received = [0]
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(0, received[0] + len(payload))))
        query = lambda **kw: "?" + urllib.parse.urlencode({"model": model, **kw})  # noqa: E731
        # warm the process: model load and imports are not what P3/P5 measure
        page.goto(f"{server.url}/attention" + query(text="warm up"))
        _wait_idle(page)
        for tokens in (128, 512):
            total = 0
            for view in ATTENTION_VIEWS:
                received[0] = 0
                page.goto(f"{server.url}/attention" + query(text=text_of(tokens), view=view))
                _wait_idle(page)
                page.wait_for_timeout(300)
                total = max(total, received[0])
            out[f"p3_bytes_{tokens}"] = total
        out["p5_seconds"] = _typing_latency(page, server.url, query)
        browser.close()
    return out


ATTENTION_VIEWS = ("Heatmap", "Head view", "Model view", "All heads", "Statistics", "Rollout")


def _typing_latency(page, url: str, query: Callable[..., str], repeats: int = 3) -> float:
    """Seconds from committing a new 32-token sentence to the attention heatmap and MLM bars being drawn."""
    times = []
    for page_name, ready in (("attention", "heatmap"), ("masked-lm", "mlm")):
        page.goto(f"{url}/{page_name}" + query(text=text_of(34)))
        _wait_idle(page)
        for r in range(repeats):
            words = text_of(34).split()
            words[0] = WORDS[(r * 7 + len(page_name)) % len(WORDS)]
            words[-1] = WORDS[(r * 11 + 3) % len(WORDS)]
            box = page.locator("textarea").first
            box.fill(" ".join(words))
            marker = page.evaluate("() => performance.now()")
            start = time.perf_counter()
            box.press("Control+Enter")
            page.wait_for_function(
                "() => document.querySelector('[data-testid=stStatusWidget]') !== null", timeout=10_000
            ) if False else None
            page.wait_for_function(
                "(since) => { const s = document.querySelector('[data-testid=stStatusWidget]');"
                " return !s && performance.now() - since > 50 && document.querySelectorAll('.js-plotly-plot .main-svg').length > 0; }",
                arg=marker,
                timeout=60_000,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_memory(model: str, analyses: int) -> dict:
    """P6: resident memory of the app process (AppTest runs the real app) before and after many analyses."""
    import psutil
    from streamlit.testing.v1 import AppTest

    proc = psutil.Process()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model"] = model
    at.session_state["text"] = text_of(34)
    at.run()
    at.switch_page("views/attention.py").run()
    first = proc.memory_info().rss
    peak = first
    for i in range(analyses):
        at.session_state["text"] = f"{text_of(34)} {i}"
        at.run()
        peak = max(peak, proc.memory_info().rss)
    return {"p6_rss_mb": peak / 2**20, "p6_rss_growth_mb": (peak - first) / 2**20, "p6_rss_first_mb": first / 2**20}


def run_bench(size: str = "bert-base", device: str | None = None, repeats: int = 7, browser: bool = True, analyses: int = 200) -> dict:
    result: dict = {"model_config": size, "notes": []}
    loaded = random_model(size, device)
    result["device"] = str(loaded.device)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    if loaded.device.type == "cuda":
        result["machine"] += f", {torch.cuda.get_device_name()}"
    result.update(measure_engine(loaded, repeats))
    result["p4_ms"] = None
    if loaded.device.type == "cuda":
        result["p4_ms"] = measure_gpu(size)
    else:
        result["notes"].append("p4_ms: no CUDA GPU on this machine; run the bench on a GPU with --device cuda.")
    del loaded
    for key in ("p3_bytes_128", "p3_bytes_512", "p5_seconds", "p6_rss_mb", "p6_rss_growth_mb"):
        result.setdefault(key, None)
    if browser and Path(CHROMIUM).exists():
        try:
            result.update(measure_browser(f"random:{size}"))
        except Exception as err:  # a bench reports what it could not measure instead of dying
            result["notes"].append(f"p3/p5: browser measurement failed: {type(err).__name__}: {err}")
    elif browser:
        result["notes"].append(f"p3/p5: no Chromium at {CHROMIUM}.")
    if analyses:
        result.update(measure_memory(f"random:{size}", analyses))
    return result


def measure_gpu(size: str, tokens: int = 512) -> float:
    """P4: the full analysis at `tokens` tokens under both masks on the GPU, in milliseconds."""
    loaded = random_model(size, "cuda")
    enc = encode(loaded, text_of(tokens))
    return 1000 * median_seconds(lambda: analyze_encoding(loaded, enc), repeats=10, warmup=3)


def main(args) -> int:
    result = run_bench(args.model_config, args.device, args.repeats, browser=not args.no_browser, analyses=args.analyses)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
