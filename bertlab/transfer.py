"""Where device tensors become numpy arrays, counted.

An analysis keeps its big tensors (attentions, hidden states) on the device that computed them; pages ask
for the slice they draw. Every device→host conversion in the engine goes through `to_host`, so the bytes a
step turns into host arrays can be measured (`counting`) and are the same number on a CPU and a GPU: on a
CPU the conversion is a zero-copy view, on a GPU a copy over the bus.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HostBytes", "counting", "to_host", "total"]

PINNED_MIN_BYTES = 1 << 20
"""A whole tensor this large comes over from a GPU through page-locked memory (one DMA, no staging copy)."""

_lock = threading.Lock()
_total = 0
_active: contextvars.ContextVar[tuple[HostBytes, ...]] = contextvars.ContextVar("bertlab_host_counters", default=())


@dataclass
class HostBytes:
    """Bytes turned into host arrays inside one `counting()` block (this thread's or task's own)."""

    bytes: int = 0


def total() -> int:
    """Bytes turned into host arrays by this process so far, every thread together."""
    return _total


def to_host(t: torch.Tensor) -> np.ndarray:
    """`t` as a numpy array (bfloat16 widened to float32: numpy has no bfloat16), its bytes counted.
    On a CPU the array shares the tensor's memory; from a GPU, large tensors copy into pinned memory."""
    global _total
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if t.device.type == "cuda" and t.element_size() * t.nelement() >= PINNED_MIN_BYTES:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        torch.cuda.current_stream(t.device).synchronize()
    else:
        host = t.cpu()
    array = host.numpy()
    with _lock:
        _total += array.nbytes
    for counter in _active.get():
        counter.bytes += array.nbytes
    return array


@contextmanager
def counting() -> Iterator[HostBytes]:
    """Count the bytes `to_host` hands out inside the block: `with counting() as c: ...; c.bytes`.
    Per thread (context variables), so concurrent sessions do not add to each other's count."""
    counter = HostBytes()
    token = _active.set((*_active.get(), counter))
    try:
        yield counter
    finally:
        _active.reset(token)
