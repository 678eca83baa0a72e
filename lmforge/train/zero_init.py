"""ZeRO-3 model construction: no rank ever holds the whole model.

Under ``deepspeed.zero.Init`` every module's parameters are partitioned across
the ranks as soon as that module is built, so a rank holds its own share plus,
for a moment, the one module being built. Transformers initialises weights in
``post_init`` (normal(0, init_std) for linears and embeddings, ones for norms),
which runs after the submodules are built - when their parameters are already
partitioned - so it would touch only empty tensors (or fail, indexing an empty
embedding's padding row) and leave torch's default initialisation.

``build_partitioned`` therefore wraps transformers' per-module entry point
(``PreTrainedModel._initialize_weights``) for the duration of the build so that
each module's own parameters are gathered with
``deepspeed.zero.GatheredParameters(modifier_rank=0)`` - DeepSpeed's documented
way to initialise partitioned weights - while transformers initialises them.
Order and random draws are transformers' own, so the initial weights are those
of a ZeRO 0-2 run with the same seed.
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def _gathered_hf_init():
    import deepspeed
    from transformers import PreTrainedModel

    original = PreTrainedModel._initialize_weights

    def gathered(self, module, *args, **kwargs):  # transformers 5 adds `is_custom_code`
        with deepspeed.zero.GatheredParameters(list(module.parameters(recurse=False)), modifier_rank=0):
            original(self, module, *args, **kwargs)

    PreTrainedModel._initialize_weights = gathered
    try:
        yield
    finally:
        PreTrainedModel._initialize_weights = original


def build_partitioned(build, ds_config: dict):
    """``build()`` under ``zero.Init``, with transformers' initialisation applied to the partitions."""
    import deepspeed

    with _gathered_hf_init(), deepspeed.zero.Init(config_dict_or_path=ds_config):
        return build()


def local_numel(module) -> int:
    """Parameter elements this rank holds: its ZeRO-3 partitions, or whole tensors otherwise."""
    return sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in module.parameters())
