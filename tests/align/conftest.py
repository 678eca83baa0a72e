"""Shared, session-scoped fixtures for post-training tests: the committed instruction
sample checked and split once, a tiny Llama base (and a GPT-2 "outside" model) saved
to disk, and one SFT → preferences → reward run that the tests then inspect."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from lmforge.testing.align import SAMPLE, SEED, sft_params  # noqa: E402  (shared with the test modules)


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("align")


@pytest.fixture(scope="session")
def instr_dir(work) -> Path:
    from lmforge.align.instructions import InstructionsConfig, check_and_split

    out = work / "instructions_checked"
    check_and_split(InstructionsConfig(path=str(SAMPLE), out_dir=str(out)), str(work / "gx.json"))
    return out


@pytest.fixture(scope="session")
def texts() -> list[str]:
    import pandas as pd

    df = pd.read_parquet(SAMPLE)
    return (df.prompt + "\n" + df.response).tolist()


@pytest.fixture(scope="session")
def base_dir(work, texts) -> Path:
    from lmforge.testing.align import make_llama

    return make_llama(work / "base", texts, vocab=768, hidden=64, layers=2)


@pytest.fixture(scope="session")
def gpt2_dir(work, texts) -> Path:
    from lmforge.testing.align import make_gpt2

    return make_gpt2(work / "gpt2", texts[:800])


@pytest.fixture(scope="session")
def sft_dir(work, base_dir, instr_dir) -> Path:
    from lmforge.align.common import save_model
    from lmforge.align.sft import train_sft

    p = sft_params(base_dir, instr_dir, work / "sft")
    model, tok, _, _ = train_sft(p, SEED, str(work / "sft-work"))
    save_model(model, tok, p.out_dir)
    return Path(p.out_dir)


@pytest.fixture(scope="session")
def pref_params(work, sft_dir, instr_dir):
    from lmforge.align.preferences import PreferenceConfig

    return PreferenceConfig(sft_model=str(sft_dir), data_dir=str(instr_dir), feedback_dir=str(work / "nofb"),
                            out_dir=str(work / "prefs"), train_prompts=40, val_prompts=24, max_new_tokens=24)


@pytest.fixture(scope="session")
def pairs_dir(pref_params) -> Path:
    from lmforge.align.common import load_causal_lm, load_tokenizer
    from lmforge.align.preferences import build_preferences

    tok, model = load_tokenizer(pref_params.sft_model), load_causal_lm(pref_params.sft_model)
    train, val, _, _ = build_preferences(model, tok, pref_params, SEED)
    out = Path(pref_params.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train.to_parquet(out / "train.parquet")
    val.to_parquet(out / "val.parquet")
    return out


@pytest.fixture(scope="session")
def reward_run(work, sft_dir, pairs_dir):
    from lmforge.align.reward import RewardStageConfig, train_reward
    from lmforge.config import build

    p = build(RewardStageConfig, {"sft_model": str(sft_dir), "pairs_dir": str(pairs_dir), "out_dir": str(work / "reward"),
                             "train": {"max_steps": 25, "lr": 1e-3, "max_length": 128}}, "reward")
    metrics, _ = train_reward(p, SEED, str(work / "reward-work"))
    return Path(p.out_dir), metrics
