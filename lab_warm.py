"""A warm server: the work every first visitor would wait for, done when the server starts (lab_serve.py runs it
in the background): the default model (or its offline stand-in) loaded, the lesson's first analyses and word-sense
comparison computed, the shipped corpus's index read from disk (or built and kept there), all in the caches the
pages read. A visitor who comes before it has finished simply shares whatever is already done.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("bertlab.app")


def warm(device: str = "auto") -> dict:
    """Fill the caches the lesson's first screens read (the model, the first analyses, the word-sense comparison);
    returns what was done and how long each part took. The word-sense corpus index comes after (`warm_index`)."""
    import bertlab
    import lab_families
    import lab_ui

    took = {}
    began = time.perf_counter()
    loaded = lab_ui._load(bertlab.DEFAULT_MODEL, device, "auto")  # the process's one copy (st.cache_resource), as pages load it
    took["model"] = time.perf_counter() - began
    for text, pair in (lab_ui.PRESETS["fill the mask"], *[(s, "") for s in lab_families.BANK]):
        started = time.perf_counter()
        lab_ui.cached(loaded, *lab_ui.analysis_work(loaded, text, pair))
        took.setdefault("analyses", 0.0)
        took["analyses"] += time.perf_counter() - started
    started = time.perf_counter()
    lab_ui.cached(loaded, "senses", ("bank", tuple(lab_families.BANK)), lambda: bertlab.senses(loaded, "bank", lab_families.BANK))
    took["word_sense"] = time.perf_counter() - started
    # What was imported and loaded lives as long as the process: out of the collector's way (a full collection
    # after a script run otherwise walks every one of torch's and transformers' objects, on every rerun)
    gc.collect()
    gc.freeze()
    return {"model": loaded.info.name, "seconds": {k: round(v, 2) for k, v in took.items()}, "loaded": loaded}


def warm_index(loaded) -> float:
    """The shipped corpus's index for the warmed model, read from disk (./lab app builds it there at set-up) or
    built and kept there, in the cache the lesson's word-sense step reads; returns the seconds it took."""
    import bertlab
    import lab_ui
    from bertlab import corpus as corpora

    started = time.perf_counter()
    shipped = corpora.shipped_corpus()
    lab_ui.cached(loaded, "corpus_index", (shipped.digest, bertlab.MASK_TYPES), lambda: corpora.stored_index(loaded, shipped))
    return time.perf_counter() - started
