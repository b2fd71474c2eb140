"""Bytes autograd saves for backward, seen by saved-tensor hooks (the memory tests' one measure)."""
import torch


def distinct_saved_bytes(fn, skip=()):
    """``(bytes, fn())``: the bytes of the distinct storages autograd saves while ``fn`` runs,
    leaving out the storages of the tensors in ``skip`` (e.g. a layer's own parameters)."""
    skipped = {t.untyped_storage().data_ptr() for t in skip}
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in skipped:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out
