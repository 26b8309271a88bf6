"""`pip install .` and `pip install -e .` of this checkout into a fresh virtual environment.

What it proves: pyproject.toml builds (setuptools, in this interpreter's environment); the wheel holds the
engine, the package data (`bertlab/data/*`) and the app (app.py, lab_ui.py, pages/ from the repository root,
as `bertlab/_app/`); the `bertlab` console script is installed and runs `--help` and `analyze --json` on a
checkpoint from the installed package, not from the checkout; `bertlab app` starts Streamlit on the
installed app.py, which renders a page; an editable install points the app at the source tree.

What it does not prove: dependency resolution. To stay fast and offline the fresh venv gets no
dependencies of its own: a `.pth` file puts the shared venv's site-packages after its own, and pip runs
with `--no-deps --no-build-isolation --no-index`. That the ranges in pyproject.toml resolve from PyPI is
left to a networked `pip install .` (it resolves to the pins in requirements.txt on this machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_LEFTOVERS = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "artifacts", ".whl", "screenshots")
PROBE = "bertlab/data/package-probe.txt"


def source_copy(tmp_path: Path) -> Path:
    """The checkout without its venv and build leftovers (pip builds in the source tree: keep the real one clean),
    plus one probe file in bertlab/data so package data is checked even before the real data files land."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS), symlinks=True)
    (source / PROBE).parent.mkdir(exist_ok=True)
    (source / PROBE).write_text("package data reaches the install\n")
    return source


def fresh_venv(tmp_path: Path) -> Path:
    """A new venv with no packages, reading the shared venv's dependencies through a .pth file."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True)
    Path(own.stdout.strip(), "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def pip_install(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", *args],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def run(venv: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run from outside the checkout, so nothing is imported from it by accident."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


PROBE_SCRIPT = """
import json, sys
import bertlab, bertlab.cli
paths = {"package": bertlab.__file__, "app": str(bertlab.cli.app_path())}
if len(sys.argv) > 1:  # and render the installed app's Tokenization page with this model
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(paths["app"], default_timeout=120)
    for key, value in {"model": sys.argv[1], "device": "cpu", "text": "the cat sat ."}.items():
        at.session_state[key] = value
    at.switch_page("pages/tokenization.py")
    at.run()
    assert not at.exception, at.exception
    paths["title"] = at.title[0].value
print(json.dumps(paths))
"""


def installed(venv: Path, cwd: Path, *model: str) -> dict:
    """Where the fresh venv imports bertlab and its app from (with a model: the app's page title, rendered there)."""
    probe = run(venv, str(venv / "bin" / "python"), "-c", PROBE_SCRIPT, *model, cwd=cwd)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout.strip().splitlines()[-1])


def test_pip_install_gives_the_command_the_package_data_and_the_app(tmp_path, tiny_bert_dir):
    source, venv = source_copy(tmp_path), fresh_venv(tmp_path)
    pip_install(venv, str(source))
    bertlab_cmd = str(venv / "bin" / "bertlab")

    paths = installed(venv, tmp_path, str(tiny_bert_dir))
    package = Path(paths["package"]).parent
    assert package.is_relative_to(venv), f"bertlab imported from {package}, not the fresh venv"
    assert (package / PROBE.removeprefix("bertlab/")).is_file(), "bertlab/data/* is not in the wheel"
    for data in (ROOT / "bertlab" / "data").glob("*"):
        assert (package / "data" / data.name).is_file(), f"{data.name} is not in the wheel"
    app = Path(paths["app"])
    assert app == package / "_app" / "app.py" and app.is_file()
    assert (app.parent / "lab_ui.py").is_file()
    assert (app.parent / "lab_widgets.py").is_file()
    assert {p.name for p in (ROOT / "pages").glob("*.py")} <= {p.name for p in (app.parent / "pages").glob("*.py")}
    assert paths["title"] == "Tokenization", "the installed app did not render its Tokenization page"

    helped = run(venv, bertlab_cmd, "--help", cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("analyze", "senses", "prefetch", "bench", "app"):
        assert command in helped.stdout

    analysed = run(venv, bertlab_cmd, "analyze", "the quick brown [MASK] jumps .", "--model", str(tiny_bert_dir), "--device", "cpu", "--json", cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    data = json.loads(analysed.stdout)
    assert data["model"]["heads_available"] == ["mlm", "nsp"] and data["mlm"][0]["bidirectional"]

    # `bertlab app` serves it
    port = _free_port()
    server = subprocess.Popen(
        [bertlab_cmd, "app", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert _healthy(f"http://127.0.0.1:{port}/_stcore/health", server), "bertlab app did not start Streamlit"
    finally:
        server.terminate()  # `bertlab app` became Streamlit (exec), so this reaches the server itself
        try:
            output = server.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0]
    assert f"127.0.0.1:{port}" in output, output


def test_editable_install_points_at_the_source_tree(tmp_path):
    source, venv = source_copy(tmp_path), fresh_venv(tmp_path)
    pip_install(venv, "-e", str(source))

    paths = installed(venv, tmp_path)
    assert Path(paths["package"]) == source / "bertlab" / "__init__.py"
    assert Path(paths["app"]) == source / "app.py", "an editable install runs the app the team edits"
    assert (venv / "bin" / "bertlab").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str, server: subprocess.Popen, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return True
        except OSError:
            time.sleep(0.3)
    return False
