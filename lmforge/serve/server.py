"""Load a released model folder into a running engine and serve it with uvicorn.

`load_state` is the one place that turns a model folder plus TGI-style limits into a
`ServerState`: it loads the tokenizer and `AutoModelForCausalLM` from local files only,
collects the stop ids (generation_config's eos ids, the tokenizer's EOS and the chat
end marker `<|end|>`) and the default repetition penalty (generation_config's, applied to
requests that set none, as vLLM applies a model's generation config), and derives TGI's
defaults for limits that were not given (max_total_tokens = the model's context,
max_input_tokens = one less), refusing limits
the model cannot honour, and a folder transformers cannot load, with a one-line error
naming the flag. `model_sha` gives the folder a content hash for /info (TGI's
`model_sha`): the release's own file hashes (lineage.json, written by lmforge.release)
when present, else the hashes of the folder's files, so every model the gateway logs
has a real version and harvest can count examples per version.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from lmforge.chat import stop_token_ids
from lmforge.io import file_sha256
from lmforge.logconfig import configure
from lmforge.serve.app import create_app
from lmforge.serve.requests import ServerState
from lmforge.serve.engine import Engine
from lmforge.serve.metrics import ServerMetrics
from lmforge.serve.protocol import Limits
from lmforge.serve.weights import BATCH_KERNELS
from lmforge.stage import InputError

class ServeError(InputError):
    """The model folder or a limit is unusable; the message names which."""


def stop_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    with contextlib.suppress(ValueError):  # neither EOS nor an end-of-turn token: the model's own
        ids.update(stop_token_ids(tokenizer))
    return ids


def _load(model_id: str | Path, dtype: str):
    """Tokenizer and model from local files; a folder that will not load is a ServeError."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_id)
    if not (path / "config.json").is_file():
        raise ServeError(f"--model-id {model_id}: not a model folder (no config.json); "
                         "run `dvc repro release` or point --model-id at an HF model folder")
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ServeError(f"--dtype {dtype}: not a torch dtype (float32, bfloat16, float16)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    except Exception as e:  # OSError, ValueError, ImportError, KeyError...: all mean "this folder"
        reason = (str(e).strip().splitlines() or [""])[0]
        raise ServeError(f"--model-id {model_id}: cannot load the model ({type(e).__name__}: {reason})") from e
    return tokenizer, model


_NOT_CONTENT = {"README.md", "lineage.json"}  # the card and lineage describe the model, they are not it


def model_sha(folder: str | Path) -> str | None:
    """sha256 over the sorted (file name, sha256) pairs of the model's files (see the docstring)."""
    folder = Path(folder)
    files = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        files = json.loads((folder / "lineage.json").read_text()).get("files_sha256")
    if not isinstance(files, dict) or not files:
        files = {}
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if p.is_file() and p.name not in _NOT_CONTENT:
                files[p.name] = file_sha256(p)
    if not files:
        return None
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


def load_state(model_id: str | Path, *, max_input_tokens: int | None = None, max_total_tokens: int | None = None,
               max_concurrent_requests: int = 32, max_batch_size: int = 8, batch_wait_ms: float = 5.0,
               payload_limit: int = 2_000_000, dtype: str = "float32", batch_kernels: str = "onednn") -> ServerState:
    if batch_kernels not in BATCH_KERNELS:
        raise ServeError(f"--batch-kernels {batch_kernels!r} (env LMFORGE_BATCH_KERNELS) must be one of "
                         f"{', '.join(BATCH_KERNELS)}")
    tokenizer, model = _load(model_id, dtype)
    context = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
    total = max_total_tokens or min(context, 4096)
    inp = max_input_tokens or total - 1
    if total > context:
        raise ServeError(f"--max-total-tokens {total} exceeds the model's context of {context} tokens")
    if not 0 < inp < total:
        raise ServeError(f"--max-input-tokens {inp} must be positive and below --max-total-tokens {total}")
    if min(max_concurrent_requests, max_batch_size, payload_limit) < 1 or batch_wait_ms < 0:
        raise ServeError("--max-concurrent-requests, --max-batch-size and --payload-limit must be at least 1, "
                         "--batch-wait-ms at least 0")
    limits = Limits(max_input_tokens=inp, max_total_tokens=total, max_concurrent_requests=max_concurrent_requests,
                    max_batch_size=max_batch_size, payload_limit=payload_limit)
    metrics = ServerMetrics()
    engine = Engine(model, tokenizer, max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms,
                    eos_ids=stop_ids(model, tokenizer), metrics=metrics, batch_kernels=batch_kernels)
    penalty = getattr(model.generation_config, "repetition_penalty", None)
    return ServerState(engine=engine, tokenizer=tokenizer, limits=limits, model_id=str(model_id),
                       metrics=metrics, model_dtype=dtype, model_sha=model_sha(model_id),
                       default_repetition_penalty=None if penalty in (None, 1.0) else float(penalty))


def serve(state: ServerState, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    configure(log_level, server=True)
    app = create_app(state)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=3,
                access_log=log_level in ("debug", "info"))
