"""bertviz's head and model views, made to work with no network.

bertviz loads require.js, d3 and jQuery from a CDN, so its views are blank offline. Here the HTML
that bertviz itself builds is kept, and its CDN script tag is replaced by jQuery and d3 read from the
machine's installed Debian packages (libjs-jquery, node-d3), plus a tiny `requirejs` shim that hands
those two libraries to bertviz's callback. No third-party code lives in this repository.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .tokens import Token
from .transfer import to_host

JS_DIRS = [Path(p) for p in os.environ.get("BERTLAB_JS_DIRS", "/usr/share/javascript:/usr/share/nodejs").split(":")]
LIBRARIES = {
    # bertviz is written for d3 v5: Debian's node-d3 (5.16) ships it; libjs-d3 (3.5) draws only the head view.
    "d3": ("d3/dist/d3.min.js", "d3/d3.min.js"),
    "jquery": ("jquery/jquery.min.js", "jquery/jquery.js"),
}
PACKAGES = {"d3": "node-d3", "jquery": "libjs-jquery"}
CDN_SCRIPT = re.compile(r'<script src="https://[^"]+"></script>')

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


HEAD_VIEW_MAX_VALUES = 600_000
"""bertviz draws one SVG line per (head, query, key): past this many the page stops being responsive."""
MODEL_VIEW_MAX_VALUES = 1_600_000

DECODER = """
<script>
window.bertlabAttention = function (b64, shape) {
  // (layer, head, query, key) weights quantized to bytes: 4 bytes of JSON float text become 1.33.
  var bytes = atob(b64), i = 0, out = [];
  for (var l = 0; l < shape[0]; l++) { var layer = [];
    for (var h = 0; h < shape[1]; h++) { var head = [];
      for (var q = 0; q < shape[2]; q++) { var row = new Array(shape[3]);
        for (var k = 0; k < shape[3]; k++) { row[k] = bytes.charCodeAt(i++) / 255; }
        head.push(row); }
      layer.push(head); }
    out.push(layer); }
  return out;
};
</script>
"""


class TooManyTokens(ValueError):
    """The view would draw too many lines to stay responsive; the heatmap and thumbnails still work."""


def max_tokens(heads: int, layers: int, view: str) -> int:
    """The longest input a bertviz view is drawn for (it draws every token pair of every head)."""
    budget, shown_layers = (HEAD_VIEW_MAX_VALUES, 1) if view == "head" else (MODEL_VIEW_MAX_VALUES, layers)
    return int((budget / (heads * shown_layers)) ** 0.5)


def _encode(attentions: np.ndarray) -> str:
    quantized = np.clip(np.rint(attentions * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(quantized.tobytes()).decode("ascii")


def _compact(html: str, placeholder: list, attentions: np.ndarray) -> str:
    """Swap the placeholder's JSON in bertviz's params for a call that decodes the packed weights."""
    marker = json.dumps(placeholder)
    if marker not in html:
        raise RuntimeError("bertviz's HTML changed shape; cannot pack the attention weights")
    call = f'bertlabAttention("{_encode(attentions)}", {list(attentions.shape)})'
    # bertviz pastes its params twice: into the code, then into the comment after it ("HACK: PYTHON_PARAMS
    # is a template marker"), so every weight travels twice. Keep the code's copy, empty the comment's.
    code, rest = html.split(marker, 1)
    return code + call + rest.replace(marker, "[]")


def _tokens_stay_in_script(html: str, tokens: Sequence[Token]) -> str:
    """bertviz pastes the tokens into a <script> as JSON strings. A token holding `</script>` (a tokenizer that
    keeps tags whole, e.g. added tokens) would end the script there, and the text after it would be parsed as
    HTML. Inside a JavaScript string `<\\/` is the same text as `</`, so the view shows the token unchanged."""
    for text in {t.text for t in tokens}:
        quoted = json.dumps(text)
        safe = quoted.replace("</", "<\\/").replace("<!--", "<\\!--")
        if safe != quoted:
            html = html.replace(quoted, safe)
    return html


def _offline(html: str) -> str:
    html = CDN_SCRIPT.sub("", html)
    return offline_scripts() + DECODER + html


def _placeholders(layers: int, heads: int, length: int, shown: list[int]) -> tuple[tuple[torch.Tensor, ...], list]:
    """Zero tensors where bertviz will read (the layers shown) and 1-element stand-ins elsewhere."""
    zero = torch.zeros(1, heads, length, length, dtype=torch.float64)
    tensors = tuple(zero if i in shown else torch.zeros(1, 1, 1, 1) for i in range(layers))
    return tensors, zero[0].tolist()


LAYER_MENU = 'Layer: <select id="layer"></select>'


def head_view(tokens: Sequence[Token], attentions: np.ndarray, layer: int = 0) -> str:
    """bertviz's head view of one layer as a self-contained HTML string (attentions: layer, head, query, key)."""
    from bertviz import head_view as bertviz_head_view

    layers, heads, length, _ = attentions.shape
    if length > max_tokens(heads, layers, "head"):
        raise TooManyTokens(
            f"The head view draws a line for every token pair of every head; {length} tokens is more than it can "
            f"draw responsively (up to {max_tokens(heads, layers, 'head')}). Use the heatmap or the thumbnails."
        )
    tensors, placeholder = _placeholders(layers, heads, length, [layer])
    html = bertviz_head_view(
        attention=tensors, tokens=[t.text for t in tokens], layer=layer, include_layers=[layer], html_action="return"
    ).data
    # One layer is sent, so bertviz's layer menu would offer one choice beside the page's own layer control:
    # keep the element (its script reads it), hidden.
    html = html.replace(LAYER_MENU, '<span hidden>Layer: <select id="layer"></select></span>', 1)
    return _offline(_compact(_tokens_stay_in_script(html, tokens), [placeholder], attentions[layer : layer + 1]))


def model_view(tokens: Sequence[Token], attentions: np.ndarray) -> str:
    """bertviz's model view (every layer and head) as a self-contained HTML string."""
    from bertviz import model_view as bertviz_model_view

    layers, heads, length, _ = attentions.shape
    if length > max_tokens(heads, layers, "model"):
        raise TooManyTokens(
            f"The model view draws every token pair of all {layers * heads} heads; {length} tokens is more than "
            f"it can draw responsively (up to {max_tokens(heads, layers, 'model')}). The thumbnails show every head at any length."
        )
    tensors, placeholder = _placeholders(layers, heads, length, list(range(layers)))
    html = bertviz_model_view(attention=tensors, tokens=[t.text for t in tokens], html_action="return").data
    return _offline(_compact(_tokens_stay_in_script(html, tokens), [placeholder] * layers, attentions))


def pooled_heads(attentions, size: int) -> np.ndarray:
    """(layer, head, size, size) float32: each head's (query, key) weights average-pooled to size x size over
    equal bins and scaled to its own maximum. Computed where the weights are (a GPU's memory: only the small
    result crosses to the host), from a (layer, head, query, key) array or tensor or one (head, query, key) tensor
    per layer (MaskRun.attention_layers)."""
    layers = list(attentions) if isinstance(attentions, (list, tuple)) else list(torch.as_tensor(np.asarray(attentions)
                                                                                              if not isinstance(attentions, torch.Tensor) else attentions))
    length = layers[0].shape[-1]
    edges = torch.from_numpy(np.linspace(0, length, size + 1).astype(int))
    counts = edges.diff().float()
    pooled = []
    for weights in layers:
        e = edges.to(weights.device)
        # a bin's sum from a 2-D running sum (zero-padded in front): S[b1, c1] − S[b0, c1] − S[b1, c0] + S[b0, c0]
        s = torch.nn.functional.pad(weights.float().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
        rows_hi, rows_lo = s[:, e[1:]], s[:, e[:-1]]
        sums = rows_hi[:, :, e[1:]] - rows_lo[:, :, e[1:]] - rows_hi[:, :, e[:-1]] + rows_lo[:, :, e[:-1]]
        mean = sums / (counts.to(weights.device)[:, None] * counts.to(weights.device)[None, :])
        pooled.append(mean / mean.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12))
    return to_host(torch.stack(pooled))


def thumbnails(attentions, tile: int = 48, gap: int = 2) -> bytes:
    """Every head's attention as a small image in one PNG grid (rows: layers, columns: heads); the pooling runs
    where the weights are (pooled_heads)."""
    from PIL import Image

    layers, heads, length = len(attentions), attentions[0].shape[0], attentions[0].shape[-1]
    size = min(tile, length)
    pooled = pooled_heads(attentions, size)
    grid = np.ones((layers * (size + gap) - gap, heads * (size + gap) - gap), dtype=np.float32) * -1
    for l in range(layers):
        for h in range(heads):
            grid[l * (size + gap) : l * (size + gap) + size, h * (size + gap) : h * (size + gap) + size] = pooled[l, h]
    white, blue = np.array([247, 251, 255.0]), np.array([8, 48, 107.0])
    rgb = white + np.clip(grid, 0, 1)[..., None] * (blue - white)
    rgb[grid < 0] = 255
    zoom = max(2, -(-tile // size))
    image = Image.fromarray(rgb.astype(np.uint8)).resize((grid.shape[1] * zoom, grid.shape[0] * zoom), Image.NEAREST)
    image = _label_grid(image, layers, heads, (size + gap) * zoom)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


LABEL_SHARE = 0.4
"""A head or layer label is this share of a tile's pitch tall: the grid is shown at its own width on a laptop or
projector and shrunk to a phone's 350 px, and a label of 0.4 tiles stays ~11 px or more on the phone."""


def _label_grid(image, layers: int, heads: int, step: int):
    """Head numbers across the top, layer numbers down the left, in a font that grows with the tiles (Pillow's
    built-in scalable font; its fixed bitmap font is 11 px, ~4 px once a phone shrinks the grid)."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(14, int(step * LABEL_SHARE))
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: its bitmap font, small but readable on a laptop
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image)
    left = int(draw.textlength(f"L{layers - 1}", font=font)) + size // 2
    top = int(size * 1.4)
    framed = Image.new("RGB", (image.width + left, image.height + top), "white")
    framed.paste(image, (left, top))
    draw = ImageDraw.Draw(framed)
    ink = (31, 41, 55)  # gray-800 on white: 14:1
    for h in range(heads):
        draw.text((left + h * step + step // 2, top // 2), str(h), fill=ink, font=font, anchor="mm")
    for l in range(layers):
        draw.text((left - size // 4, top + l * step + step // 2), f"L{l}", fill=ink, font=font, anchor="rm")
    return framed
