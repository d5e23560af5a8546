"""The machine a run is on: accelerators, host memory, and GPU memory helpers.

    from roadbuddy_utils.hardware import free_memory, is_oom
    try: ...
    except Exception as e:
        if is_oom(e): free_memory()
"""
from __future__ import annotations


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def free_memory():
    """Hand cached GPU blocks back after an out-of-memory error or a released model (on a CPU,
    reference counting has already freed the tensors; a full gc pass there only costs time)."""
    import gc

    import torch

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()
