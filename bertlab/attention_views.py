"""bertviz's head and model views, made to work with no network.

bertviz loads require.js, d3 and jQuery from a CDN, so its views are blank offline. Here the HTML
that bertviz itself builds is kept, and its CDN script tag is replaced by jQuery and d3 read from the
machine's installed Debian packages (libjs-jquery, node-d3), plus a tiny `requirejs` shim that hands
those two libraries to bertviz's callback. No third-party code lives in this repository.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .tokens import Token

JS_DIRS = [Path(p) for p in os.environ.get("BERTLAB_JS_DIRS", "/usr/share/javascript:/usr/share/nodejs").split(":")]
LIBRARIES = {
    # bertviz is written for d3 v5: Debian's node-d3 (5.16) ships it; libjs-d3 (3.5) draws only the head view.
    "d3": ("d3/dist/d3.min.js", "d3/d3.min.js"),
    "jquery": ("jquery/jquery.min.js", "jquery/jquery.js"),
}
PACKAGES = {"d3": "node-d3", "jquery": "libjs-jquery"}
CDN_SCRIPT = re.compile(r'<script src="https://[^"]+"></script>')
DECIMALS = 3
"""Attention weights sent to the browser are rounded: 0.123 draws the same line as 0.12300000339746475."""

SHIM = """
<script>
(function () {
  var modules = {jquery: window.jQuery, d3: window.d3};
  window.requirejs = window.require = function (deps, callback) {
    callback.apply(window, deps.map(function (name) { return modules[name]; }));
  };
  window.require.config = window.requirejs.config = function () {};
})();
</script>
"""


class OfflineAssetsMissing(RuntimeError):
    """jQuery or d3 is not installed where bertlab looks for it."""


@lru_cache(maxsize=1)
def offline_scripts() -> str:
    """jQuery and d3 from installed packages, inlined, followed by the requirejs shim."""
    parts = []
    for name, candidates in LIBRARIES.items():
        path = next((d / c for c in candidates for d in JS_DIRS if (d / c).is_file()), None)
        if path is None:
            raise OfflineAssetsMissing(
                f"The attention views need {name} from the Debian package {PACKAGES[name]}; install it "
                f"(apt-get install {PACKAGES[name]}) or point BERTLAB_JS_DIRS at a folder holding {candidates[0]}."
            )
        source = path.read_text(encoding="utf-8")
        # Hide any AMD loader while the libraries run, so both set their globals.
        parts.append(f"<script>(function(define){{\n{source}\n}})(undefined);</script>")
    return "\n".join(parts) + SHIM


def _layers(attentions: np.ndarray) -> tuple[torch.Tensor, ...]:
    rounded = np.round(attentions.astype(np.float64), DECIMALS)
    return tuple(torch.from_numpy(layer)[None] for layer in rounded)


def _offline(html: str) -> str:
    html, count = CDN_SCRIPT.subn("", html)
    return offline_scripts() + html


def head_view(tokens: Sequence[Token], attentions: np.ndarray, layer: int = 0, heads: list[int] | None = None) -> str:
    """bertviz's head view as a self-contained HTML string (attentions: layer, head, query, key)."""
    from bertviz import head_view as bertviz_head_view

    html = bertviz_head_view(
        attention=_layers(attentions), tokens=[t.text for t in tokens], layer=layer, heads=heads, html_action="return"
    ).data
    return _offline(html)


def model_view(tokens: Sequence[Token], attentions: np.ndarray, layers: list[int] | None = None) -> str:
    """bertviz's model view (a thumbnail per layer and head) as a self-contained HTML string."""
    from bertviz import model_view as bertviz_model_view

    html = bertviz_model_view(
        attention=_layers(attentions), tokens=[t.text for t in tokens], include_layers=layers, html_action="return"
    ).data
    return _offline(html)
