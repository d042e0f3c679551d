"""Peak memory of a computation measured without running it: the modules are built as fake tensors (no storage)
and a dispatch mode adds up the bytes of every tensor the computation creates, minus those freed, keeping the
highest total. Parameters built before the trace are not counted (the plan counts them by their own rule).

Exact for what torch allocates through its operators (activations, saved tensors, temporaries, input grads);
blind to allocator rounding and library workspaces (cuBLAS, flash attention's), which the plan's margin covers."""
from __future__ import annotations

import contextlib
import warnings
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakMemory(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a view or an in-place result shares its input's storage: not an allocation (the input may be a weight)
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self._seen and key not in inputs:
                    self._seen.add(key)
                    self.now += storage.nbytes()
                    weakref.finalize(storage, self._free, key, storage.nbytes())
        self.peak = max(self.peak, self.now)
        return out


@contextlib.contextmanager
def fake_tensors():
    """Build and run modules of any size in no memory (torch's FakeTensorMode, CPU fake tensors)."""
    import torch._dynamo.config
    from torch._subclasses.fake_tensor import FakeTensorMode
    # FakeTensorMode's dispatch cache is shared by every mode of the process; reusing its entries across our
    # successive traces crashed the interpreter (torch 2.13), so it is off here
    with torch._dynamo.config.patch(fake_tensor_cache_enabled=False), FakeTensorMode(allow_non_fake_inputs=True), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*data pointer of FakeTensor")      # raised inside diffusers
        warnings.filterwarnings("ignore", message=".*enable_nested_tensor is True")     # nn.Transformer's notice
        warnings.filterwarnings("ignore", message=".*Mismatch dtype between input and weight")   # Wan's fp32 norms
        yield


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Build modules directly in `dtype` (a fake module cannot be cast afterwards)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def peak_bytes(fn) -> int:
    """The peak of the bytes `fn()` allocates above what exists when it starts (its result released after)."""
    with PeakMemory() as mode:
        out = fn()
        del out
    return mode.peak
