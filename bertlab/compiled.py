"""An optional compiled forward (torch.compile), behind a setting: `BERTLAB_COMPILE=1` (or a backend's name, e.g.
`BERTLAB_COMPILE=aot_eager`), `load_model(..., compile="inductor")`, `--compile` on the command line.

Why only parts of the model: bertlab's hooks change with every run (each run installs the captures, edits and
mask it asks for, hooks.hooked), and a compiled graph that contains hooks is guarded on them and recompiled
whenever they change. So what is compiled is every part of a layer that no named point reaches (BERT's
`intermediate`: the feed-forward's first dense and its activation, about a third of a layer's arithmetic; the
families' equivalents where their adapter's points leave one), each module's own `forward` replaced by its
compiled version. The hooks around them stay eager, so every capture, mask and intervention works as before.
Proven equal to eager in tests/test_engine.py; a GPU is where it pays (the bench's `--compile`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from .errors import InputError

BACKENDS = ("inductor", "aot_eager", "eager")
"""torch.compile's backends bertlab accepts: inductor (the default, generated kernels), aot_eager (the graph,
traced ahead of time, run by eager kernels: a cheap check that a graph traces), eager (dynamo only)."""


def setting(value: str | bool | None = None) -> str | None:
    """The backend asked for (an argument, else BERTLAB_COMPILE), or None for the eager model. '1', 'true',
    'yes' and True mean inductor; '', '0', 'false', 'no' and None mean eager."""
    if value is None:
        value = os.environ.get("BERTLAB_COMPILE", "")
    if isinstance(value, bool):
        return "inductor" if value else None
    value = value.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return None
    if value in ("1", "true", "yes", "on"):
        return "inductor"
    if value not in BACKENDS:
        raise InputError(f"Unknown compile setting '{value}': use 1 (inductor) or one of {', '.join(BACKENDS)}.")
    return value


def hook_free(block: torch.nn.Module, paths: Iterator[str]) -> list[str]:
    """The largest submodules of a layer that hold no named point (neither a point's module nor one of its
    ancestors or descendants), with weights of their own: what can be compiled without a hook inside it."""
    points = [p for p in paths if p]
    reached = lambda name: any(p == name or p.startswith(name + ".") or name.startswith(p + ".") for p in points)  # noqa: E731
    found: list[str] = []

    def visit(prefix: str, module: torch.nn.Module) -> None:
        for child, sub in module.named_children():
            name = f"{prefix}.{child}" if prefix else child
            if not reached(name):
                if any(True for _ in sub.parameters()) and any(True for _ in sub.children()):
                    found.append(name)
            elif any(p.startswith(name + ".") for p in points):
                visit(name, sub)

    visit("", block)
    return found


def compile_layers(encoder_layers: list[torch.nn.Module], paths: list[str], backend: str) -> list[str]:
    """Replace the forward of every hook-free part of every layer with its compiled version; returns their paths
    (layer-relative, the same in every layer). A layer shared by several (ALBERT) is compiled once."""
    done: set[int] = set()
    parts: list[str] = []
    for block in encoder_layers:
        if id(block) in done:
            continue
        done.add(id(block))
        parts = hook_free(block, iter(paths))
        for name in parts:
            module = block.get_submodule(name)
            module.forward = torch.compile(module.forward, backend=backend, dynamic=None)
    return parts
