"""The families' own views in a real browser (issue 19's screenshots): Inside a head on ModernBERT (q and k before
and after the rotation) and DeBERTa (three score terms), Layers pre-norm (ModernBERT; post-norm is test_browser.py's Layers view on MiniLM),
and ELECTRA's replaced-token view, on a laptop and a 390-px phone: every chart drawn with its title clear of its
data, no exception, and the view's own words on screen. Screenshots go where test_browser.py's go."""

from __future__ import annotations

import urllib.parse

import pytest

from labtools.server import AppServer
from test_browser import browser, open_page, plots, shots, titles_clear  # noqa: F401  (fixtures)

TEXT = "The cat sat on the mat because it was warm."
CASES = [  # (family's tiny checkpoint or a model name, page, words of its own view, screenshot)
    ("modernbert", "head", "rotation", "modernbert-head"),
    ("deberta", "head", "three terms", "deberta-head"),
    ("modernbert", "layers", "pre-norm", "modernbert-layers"),
    ("electra", "masked-lm", "replaced", "electra-replaced"),
]
SCREENS = {"laptop": dict(viewport={"width": 1400, "height": 1100}),
           "phone": dict(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)}


@pytest.fixture(scope="module")
def server(family_dirs, tmp_path_factory):
    """A server that may load the tests' tiny checkpoints (their folder listed in BERTLAB_ALLOWED_PATHS): one
    loads in a fraction of a second, where a random-weight base shape takes many."""
    root = tmp_path_factory.getbasetemp()
    with AppServer(env={"BERTLAB_ALLOWED_PATHS": str(root)}, log=tmp_path_factory.mktemp("family-server") / "server.log") as app:
        yield app.url


@pytest.mark.parametrize("screen", list(SCREENS))
def test_each_familys_own_view_draws_clear_on_a_laptop_and_a_phone(server, family_dirs, browser, shots, screen):
    context = browser.new_context(**SCREENS[screen])
    pg = context.new_page()
    try:
        for family, path, words, name in CASES:
            model = str(family_dirs[family]) if family in family_dirs else family
            open_page(pg, f"{server}/{path}?" + urllib.parse.urlencode({"model": model, "text": TEXT}))
            plots(pg, 1)
            assert pg.get_by_text(words).count() > 0, f"{model} /{path}: no '{words}' on the page"
            titles_clear(pg, f"{screen}, {model} /{path}")
            pg.screenshot(path=str(shots / f"family-{name}-{screen}.png"), full_page=screen == "laptop")
    finally:
        context.close()
