"""A release folder (Llama safetensors + byte-level BPE tokenizer.json) as one f32 GGUF file.

bench_serve.py runs llama.cpp's server as a peer on the very same weights. llama.cpp's
own converter (`convert_hf_to_gguf.py`) is not installed by any PyPI package (the
llama-cpp-python sdist vendors it but installs only the bindings), so this writes the
file with the `gguf` package's `GGUFWriter` and `TensorNameMap`, doing the two things
the converter does for a Llama: permute the q/k projection rows from Hugging Face's
rotate-half rope layout to llama.cpp's interleaved one, and describe the tokenizer as
"gpt2" BPE (tokens, types, merges, GPT-2 pre-tokenizer, no BOS added, since the
release's tokenizer adds none). Bench-only: `pip install -e .[bench]`.

    python bench/gguf_export.py models/release /tmp/release-f32.gguf
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half q/k rows -> llama.cpp interleaved pairs (as convert_hf_to_gguf's LlamaModel)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tokenizer(w: gguf.GGUFWriter, model_dir: Path, cfg: dict) -> None:
    tj = json.loads((model_dir / "tokenizer.json").read_text())
    assert tj["model"]["type"] == "BPE" and tj["pre_tokenizer"]["type"] == "ByteLevel", "byte-level BPE only"
    vocab = {**tj["model"]["vocab"], **{t["content"]: t["id"] for t in tj["added_tokens"]}}
    by_id = {i: t for t, i in vocab.items()}
    special = {t["id"] for t in tj["added_tokens"] if t.get("special")}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(cfg["vocab_size"])]
    types = [gguf.TokenType.CONTROL if i in special else
             gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED for i in range(cfg["vocab_size"])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    gen = json.loads((model_dir / "generation_config.json").read_text())
    eos = gen.get("eos_token_id", cfg.get("eos_token_id"))
    eos = eos if isinstance(eos, list) else [eos]
    w.add_bos_token_id(cfg.get("bos_token_id", 1))
    w.add_eos_token_id(eos[0])
    if len(eos) > 1:
        w.add_eot_token_id(eos[1])
    if cfg.get("pad_token_id") is not None:
        w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)


def export(model_dir: str | Path, out: str | Path) -> Path:
    model_dir, out = Path(model_dir), Path(out)
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama", f"{model_dir}: only Llama is exported, not {cfg['model_type']}"
    n_head, n_kv, n_layers = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"], \
        cfg["num_hidden_layers"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rope = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(model_dir.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(rope))
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    write_tokenizer(w, model_dir, cfg)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    for hf_name, t in load_file(str(model_dir / "model.safetensors")).items():
        t = t.astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            t = permute(t, n_head)
        elif hf_name.endswith("k_proj.weight"):
            t = permute(t, n_kv)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"{hf_name}: no GGUF name for this tensor")
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


if __name__ == "__main__":
    print(export(sys.argv[1], sys.argv[2]))
