"""The model room: a Llama-architecture decoder built from one size dial (``lmforge.model.llama``).

Why a package: the builder, its size table and its FLOP count live in ``llama.py``; this file
only names what the other rooms import, so ``from lmforge.model import build_model`` keeps
working while the builder has a module of its own.
"""
from lmforge.model.llama import (ASPECT, HEAD_DIM, SIZES, ModelConfig, build_model, context_length, count_params,
                                 flops_per_token, llama_config, token_cross_entropy)

__all__ = ["ASPECT", "HEAD_DIM", "SIZES", "ModelConfig", "build_model", "context_length", "count_params",
           "flops_per_token", "llama_config", "token_cross_entropy"]
