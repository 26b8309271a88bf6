"""The command line is a contract for scripts: JSON shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bertlab.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_json_contract(tiny_bert_dir, capsys, reference):
    code, out, _ = run_cli(
        capsys, "analyze", "the quick [MASK] fox jumps over the [MASK] dog.", "--pair", "a pen", "--model", str(tiny_bert_dir),
        "--device", "cpu", "--top-k", "4", "--json",
    )
    assert code == 0
    data = json.loads(out)
    model = data["model"]
    assert {"name", "layers", "heads", "hidden_size", "device", "heads_available"} <= set(model)
    assert model["heads_available"] == ["mlm", "nsp"] and model["device"] == "cpu"
    assert data["truncated"] is False
    for token in data["tokens"]:
        assert {"text", "id", "segment", "position", "start", "end", "special"} <= set(token)
    assert [t["segment"] for t in data["tokens"]][-1] == 1
    assert [m["position"] for m in data["mlm"]] == [3, 8]
    for entry in data["mlm"]:
        for kind in ("bidirectional", "causal"):
            probs = [p["prob"] for p in entry[kind]]
            assert len(probs) == 4 and probs == sorted(probs, reverse=True)
            assert all(isinstance(p["token"], str) for p in entry[kind])
    is_next = reference("the quick [MASK] fox jumps over the [MASK] dog.", "a pen")["is_next"]
    assert data["nsp"]["is_next"] == pytest.approx(is_next, abs=1e-6)
    assert data["nsp"]["not_next"] == pytest.approx(1 - is_next, abs=1e-6)


def test_senses_json_contract(capsys):
    code, out, _ = run_cli(
        capsys, "senses", "--target", "bank", "--model", "minilm", "--device", "cpu", "--json",
        "I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic.",
    )
    assert code == 0
    data = json.loads(out)
    assert data["layers"] == 7
    for kind in ("bidirectional", "causal"):
        assert len(data[kind]) == 7 and all(len(m) == 3 and all(len(r) == 3 for r in m) for m in data[kind])
    assert data["causal"][-1][0][1] == pytest.approx(1.0, abs=1e-5)
    assert data["bidirectional"][-1][0][1] < 0.95


@pytest.mark.parametrize(
    "args, message",
    [
        (["analyze", "   ", "--model", "minilm"], "empty"),
        (["analyze", "hi", "--model", "./no/such/model"], "no such directory"),
        (["senses", "--target", "bank", "--model", "minilm", "the bank."], "at least two"),
        (["senses", "--target", "bank", "--model", "minilm", "the bank.", "the river."], "sentence 2"),
    ],
)
def test_errors_are_one_line_on_stderr(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_module_entry_point_prints_no_traceback(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab", "analyze", "hello", "--model", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
