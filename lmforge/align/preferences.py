"""Preference pairs ``(prompt, chosen, rejected)`` for the reward model and DPO.

No installed package ships real preference pairs, so they are made from three
sources (``source`` column says which):

(b) ``reference``: the instruction sample's reference answer is chosen over the
    SFT model's own sampled reply to the same prompt;
(c) ``feedback:*``: human preferences harvested by the serving stage into
    ``data/feedback/preferences.parquet`` (the file may be missing or empty at first);
(a) ``rejection``: n sampled replies per prompt from the SFT model, scored by the
    reward model, best against worst. This needs the reward model, so the dpo
    stage makes these pairs after the reward stage has run.

Generated pairs are symmetric in length and ending. A sample is cut at
``max_new_tokens``; the reference it is paired with is held to the same budget (its
first ``max_new_tokens`` tokens when longer). Each side records whether it ended
within the budget (``chosen_ended``, ``rejected_ended``), and a pair whose sides
differ is dropped and counted. Before, a whole reference (83 tokens on average) stood
against a sample cut at 32: the pairs differed in length and in where the turn ended,
cues a preference learner can take instead of the content. The dpo stage trains pairs
cut on both sides as open turns (dpo.open_cut_turns).

Every set is checked before use: nothing empty, chosen never equal to rejected.
Generated pairs that come out identical (a sample reproducing the reference) are
dropped and counted; bad human-feedback rows are an error naming file and row.
Train pairs any of whose fields carries an evaluation item (a shared 13-gram,
lmforge/decontam.py) are set aside with reason ``decontamination:<eval set>``
before the reward model or DPO sees them; human feedback can quote anything.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd

from lmforge.align.common import generate
from lmforge.config import require
from lmforge.decontam import DecontaminationConfig, drop_contaminated_pairs

COLUMNS = ["prompt", "chosen", "rejected", "source"]
ENDINGS = ["chosen_ended", "rejected_ended"]  # generated pairs only; human feedback leaves them empty


@dataclasses.dataclass
class PreferenceConfig:
    sft_model: str = "models/sft"
    data_dir: str = "data/instructions_checked"
    feedback_dir: str = "data/feedback"
    out_dir: str = "data/preferences"
    train_prompts: int = 96  # instruction train prompts turned into reference-vs-sample pairs
    val_prompts: int = 32  # held-out pairs, from the instruction val split
    feedback_val_fraction: float = 0.2
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 50

    def __post_init__(self):
        require(self.train_prompts > 0, f"train_prompts must be > 0, got {self.train_prompts}")
        require(self.val_prompts > 0, f"val_prompts must be > 0, got {self.val_prompts}")
        require(0.0 <= self.feedback_val_fraction < 1.0, "feedback_val_fraction must be in [0, 1)")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")


def check_pairs(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Raise naming ``where`` and the first bad rows unless every pair is usable."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected {COLUMNS}")
    for col in ("prompt", "chosen", "rejected"):
        bad = df.index[df[col].isna() | (df[col].astype(str).str.strip() == "")].tolist()
        if bad:
            raise ValueError(f"{where}: empty '{col}' in row(s) {bad[:5]} ({len(bad)} in all)")
    same = df.index[df.chosen.str.strip() == df.rejected.str.strip()].tolist()
    if same:
        raise ValueError(f"{where}: chosen equals rejected in row(s) {same[:5]} ({len(same)} in all)")
    return check_symmetric(df, where)


def read_feedback_pairs(feedback_dir: str) -> pd.DataFrame:
    """Harvested human preferences; a missing folder or file gives zero rows."""
    path = Path(feedback_dir) / "preferences.parquet"
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_parquet(path)
    if "source" not in df.columns:
        df["source"] = "human"
    check_pairs(df.reset_index(drop=True), str(path))
    df["source"] = "feedback:" + df.source.astype(str)
    return df[COLUMNS].reset_index(drop=True)


def check_symmetric(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Raise unless every generated pair ends the same way on both sides (ended, or cut by the budget)."""
    if not set(ENDINGS) <= set(df.columns):
        return df
    known = df.chosen_ended.notna() & df.rejected_ended.notna()
    bad = df.index[known & (df.chosen_ended.astype(bool) != df.rejected_ended.astype(bool))].tolist()
    if bad:
        raise ValueError(f"{where}: chosen and rejected end differently (one ended, one cut at the token budget) "
                         f"in row(s) {bad[:5]} ({len(bad)} in all)")
    return df


def budget_cut(tok, text: str, budget: int) -> tuple[str, bool]:
    """``text`` held to a reply budget of ``budget`` new tokens, as generation would be: whole and
    ended when it and its end token fit, else its first ``budget`` tokens, not ended."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if len(ids) < budget:
        return text, True
    return tok.decode(ids[:budget], skip_special_tokens=True).strip(), False


def _drop_unusable(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Drop pairs that are identical or empty on a side, then pairs whose sides end differently."""
    keep = (df.chosen.str.strip() != df.rejected.str.strip()) & (df.rejected.str.strip() != "") \
        & (df.chosen.str.strip() != "")
    same_end = df.chosen_ended == df.rejected_ended
    return (df[keep & same_end].reset_index(drop=True),
            {"identical": int((~keep).sum()), "unmatched_ending": int((keep & ~same_end).sum())})


def reference_pairs(model, tok, prompts: list[str], references: list[str], p: PreferenceConfig,
                    seed: int) -> tuple[pd.DataFrame, dict]:
    """(b): reference answer chosen over the model's own sample, both under one token budget."""
    ended: list[bool] = []
    samples = generate(model, tok, prompts, max_new_tokens=p.max_new_tokens, sample=True,
                       temperature=p.temperature, top_k=p.top_k, seed=seed, ended=ended)
    refs = [budget_cut(tok, r, p.max_new_tokens) for r in references]
    df = pd.DataFrame({"prompt": prompts, "chosen": [r for r, _ in refs], "rejected": samples,
                       "source": "reference", "chosen_ended": [e for _, e in refs], "rejected_ended": ended})
    return _drop_unusable(df)


def rejection_pairs(model, rm, tok, prompts: list[str], n: int, p: PreferenceConfig, seed: int,
                    max_length: int = 256) -> tuple[pd.DataFrame, dict]:
    """(a): n samples per prompt, best against worst under the reward model; a pair whose
    best and worst end differently is dropped (see the module docstring)."""
    from lmforge.align.evaluate import reward_scores

    rep = [q for q in prompts for _ in range(n)]
    ended: list[bool] = []
    samples = generate(model, tok, rep, max_new_tokens=p.max_new_tokens, sample=True,
                       temperature=p.temperature, top_k=p.top_k, seed=seed, ended=ended)
    scores = reward_scores(rm, tok, rep, samples, max_length)
    rows = []
    for i, q in enumerate(prompts):
        group = sorted(zip(scores[i * n:(i + 1) * n], samples[i * n:(i + 1) * n], ended[i * n:(i + 1) * n]),
                       key=lambda t: t[0])
        (lo, worst, worst_end), (hi, best, best_end) = group[0], group[-1]
        rows.append({"prompt": q, "chosen": best, "rejected": worst, "source": "rejection",
                     "chosen_ended": best_end, "rejected_ended": worst_end, "score_margin": hi - lo})
    return _drop_unusable(pd.DataFrame(rows, columns=COLUMNS + ENDINGS + ["score_margin"]))


def _is_val(prompt: str, fraction: float) -> bool:
    return int(hashlib.sha1(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def build_preferences(model, tok, p: PreferenceConfig, seed: int, decontam: DecontaminationConfig | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Train and held-out pairs from (b) and (c), and the train pairs ``decontam`` set aside."""
    train_src = pd.read_parquet(Path(p.data_dir) / "train.parquet")
    train_src = train_src[train_src.source != "refusal"].sample(
        min(p.train_prompts, len(train_src)), random_state=seed)
    val_src = pd.read_parquet(Path(p.data_dir) / "val.parquet").head(p.val_prompts)
    train, dropped_t = reference_pairs(model, tok, train_src.prompt.tolist(), train_src.response.tolist(), p, seed)
    val, dropped_v = reference_pairs(model, tok, val_src.prompt.tolist(), val_src.response.tolist(), p, seed + 1)
    ended = pd.concat([train, val]).chosen_ended
    fb = read_feedback_pairs(p.feedback_dir)
    fb_val = fb.prompt.map(lambda q: _is_val(q, p.feedback_val_fraction)).astype(bool)
    train = check_pairs(pd.concat([train, fb[~fb_val]], ignore_index=True), "preference train pairs")
    val = check_pairs(pd.concat([val, fb[fb_val]], ignore_index=True), "preference held-out pairs")
    train, contaminated, decont = drop_contaminated_pairs(
        train, decontam or DecontaminationConfig(enabled=False), ["prompt", "chosen", "rejected"])
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"no usable preference pairs (train {len(train)}, held-out {len(val)}): every sample "
                         "equalled its reference or carried an eval item; raise preferences.temperature "
                         "or add prompts")
    metrics = {"train_pairs": len(train), "val_pairs": len(val), "feedback_pairs": len(fb),
               "dropped_identical": dropped_t["identical"] + dropped_v["identical"],
               "dropped_unmatched_ending": dropped_t["unmatched_ending"] + dropped_v["unmatched_ending"],
               "generated_pairs_ended": int(ended.sum()), "generated_pairs_cut": int((~ended).sum()),
               "decontamination": decont,
               "pairs_by_source": {k: int(v) for k, v in train.groupby("source").size().items()}}
    return train, val, contaminated, metrics


def to_dataset(df: pd.DataFrame):
    """Conversational prompt/chosen/rejected rows, the format TRL's trainers take."""
    from datasets import Dataset

    return Dataset.from_dict({
        "prompt": [[{"role": "user", "content": x}] for x in df.prompt],
        "chosen": [[{"role": "assistant", "content": x}] for x in df.chosen],
        "rejected": [[{"role": "assistant", "content": x}] for x in df.rejected],
    })
