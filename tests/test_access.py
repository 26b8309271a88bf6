"""Issue 20, the server a class shares: no local folder read (or probed) unless its operator lists one, a quiet log,
every control in reach of the keyboard, and a first `./lab` run that shows its progress.

(axe-core on every page, laptop and phone, runs with the title checks in tests/test_browser.py: one page load each.)
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

import bertlab
from bertlab import policy
from test_app import start

ROOT = Path(__file__).resolve().parent.parent


def _load_error(at) -> str:
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1, errors
    return errors[0]


def test_by_default_the_app_reads_no_local_folder_and_never_says_whether_one_exists(monkeypatch, tiny_bert_dir):
    """BERTLAB_ALLOWED_PATHS unset (conftest sets it for the rest of the suite): the app refuses every local path
    with the same words, whether it is a model, a system folder, a file or nothing at all."""
    monkeypatch.delenv("BERTLAB_ALLOWED_PATHS")
    said = {}
    for name in (str(tiny_bert_dir), "/etc", "/etc/passwd", "/no/such/folder", "../../etc", "~/models"):
        message = _load_error(start(name))
        assert "does not load models from folders on its own disk" in message, (name, message)
        said[name] = message.replace(name, "NAME")
    assert len(set(said.values())) == 1, said  # nothing in the message depends on what is at that path
    assert not start("minilm").main.error  # models it offers still load
    # the command line and notebooks run on the user's own machine: any folder, unless the variable says otherwise
    assert bertlab.load_model(str(tiny_bert_dir), device="cpu").info.layers == 2


def test_an_operator_lists_the_folders_the_app_may_read(monkeypatch, tiny_bert_dir):
    monkeypatch.setenv("BERTLAB_ALLOWED_PATHS", str(tiny_bert_dir.parent))
    assert not start(str(tiny_bert_dir)).main.error
    outside = [_load_error(start(name)).replace(name, "NAME") for name in ("/etc", "/no/such/folder")]
    assert outside[0] == outside[1] and "outside the folders this server may read models from" in outside[0]


def test_the_policy_for_a_server_and_for_a_single_user(monkeypatch, tmp_path):
    monkeypatch.delenv("BERTLAB_ALLOWED_PATHS")
    assert policy.for_server().allowed_paths == () and policy.policy().allowed_paths is None
    monkeypatch.setenv("BERTLAB_ALLOWED_PATHS", "")
    assert policy.for_server().allowed_paths == policy.policy().allowed_paths == ()
    assert policy.looks_local("/etc") and policy.looks_local("./x") and not policy.looks_local("bert-base-uncased")
    with pytest.raises(bertlab.PolicyError):
        policy.check_served("./model", "./model", packaged=False)
    policy.check_served("minilm", "/anywhere/minilm", packaged=True)  # the packaged model is not a user's path
    policy.check_served("random:bert-base", "random:bert-base", packaged=False)


def test_readme_states_the_default():
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `BERTLAB_ALLOWED_PATHS`"))
    assert "none in the app" in row and "any in the command line" in row


def test_the_server_watches_no_files():
    """Streamlit's watcher follows app.py's whole folder, .venv included: its inotify queue overflowed thousands of
    times in one class. A classroom server never reloads; .streamlit/config.toml turns it off."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"


# --- ./lab on a fresh clone -------------------------------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# python3 -m venv .venv: make a venv whose pip prints what pip prints when it is not on a terminal
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cat > "$3/bin/python" <<'PIP'
#!/usr/bin/env bash
case " $* " in *" -q "*) exec > /dev/null ;; esac  # pip -q prints nothing but errors
echo "Looking in indexes: https://pypi.org/simple"
echo "Collecting torch==2.13.0 (from -r requirements.txt (line 2))"
echo "  Downloading torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (200.1 MB)"
echo "Collecting numpy>=2.0 (from -r requirements.txt (line 7))"
echo "  Using cached numpy-2.3.1-cp311-cp311-manylinux_2_28_x86_64.whl (16.6 MB)"
echo "Installing collected packages: numpy, torch"
[ -n "$FAIL" ] && { echo "ERROR: No matching distribution found for torch==2.13.0"; exit 1; }
echo "Successfully installed numpy-2.3.1 torch-2.13.0"
PIP
  chmod +x "$3/bin/python"
fi
"""


@pytest.mark.parametrize("fails", [False, True])
def test_lab_shows_progress_while_it_creates_the_venv(tmp_path, fails):
    """The first `./lab` run installs for minutes: it numbers each package pip collects and names each download
    as it happens; a failed install stops it and leaves no stamp, so the next run tries again."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("lab", "requirements.txt"):
        shutil.copy(ROOT / name, clone / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("python3", FAKE_PYTHON), ("dpkg", "#!/bin/sh\nexit 0\n")):  # every Debian package "installed"
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **({"FAIL": "1"} if fails else {})}
    run = subprocess.run(["bash", str(clone / "lab"), "setup"], cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    lines = run.stderr.splitlines()
    assert any("installing" in line and "packages from requirements.txt" in line for line in lines), lines
    assert "lab: [1] Collecting torch==2.13.0 (from -r requirements.txt (line 2))" in lines
    assert "lab: [2] Collecting numpy>=2.0 (from -r requirements.txt (line 7))" in lines
    assert any(line.startswith("lab:") and "Downloading torch-2.13.0" in line and "200.1 MB" in line for line in lines)
    assert not any("Looking in indexes" in line for line in lines)
    if fails:
        assert run.returncode != 0 and not (clone / ".venv" / ".requirements.sha256").exists()
        assert any("ERROR: No matching distribution" in line for line in lines)
    else:
        assert run.returncode == 0, run.stderr
        assert any(line.startswith("lab: done: installed numpy-2.3.1 torch-2.13.0") for line in lines)
        assert (clone / ".venv" / ".requirements.sha256").exists()
