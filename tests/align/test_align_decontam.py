"""Post-training decontamination: SFT and preference pairs that carry an eval item are set aside
before training, with reason ``decontamination:<set>``, counted per eval set; no other pair is."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lmforge.testing.align import SAMPLE
from lmforge.align.instructions import InstructionsConfig, _bucket, check_and_split
from lmforge.decontam import DecontaminationConfig, drop_contaminated_pairs, load_index, read_jsonl

DATA = Path(__file__).resolve().parents[2] / "evals" / "data"
DECONTAM = DecontaminationConfig(eval_data=str(DATA))


def _eval_texts() -> dict[str, str]:
    """One text per eval set that a training pair could carry."""
    mc = next(r["decontam_text"] for r in read_jsonl(DATA / "manpages_mc.jsonl")
              if len(r["decontam_text"].split()) >= 9)
    ds = next(r["decontam_text"] for r in read_jsonl(DATA / "docstrings_mc.jsonl")
              if len(r["decontam_text"].split()) >= 9)
    bpb = " ".join(read_jsonl(DATA / "pydoc_bpb.jsonl")[5]["text"].split()[30:50])
    refusal = read_jsonl(DATA / "refusal.jsonl")[1]["prompt"]
    return {"manpages_mc": mc, "docstrings_mc": ds, "pydoc_bpb": bpb, "refusal": refusal}


def _train_prompt(stem: str, val_fraction: float) -> str:
    """A prompt that the hash split puts into ``train`` (planted pairs must be training pairs)."""
    return next(p for i in range(100) if _bucket(p := f"{stem} (variant {i})?") >= val_fraction)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The clean part of the committed sample plus planted pairs (eval text in the response, or
    in the prompt), checked and split with decontamination on."""
    tmp = tmp_path_factory.mktemp("pairs_decontam")
    index = load_index(str(DATA))
    df = pd.read_parquet(SAMPLE)
    clean = df[[not (index.match(p) or index.match(r)) for p, r in zip(df.prompt, df.response)]]
    p = InstructionsConfig(path=str(tmp / "pairs.parquet"), out_dir=str(tmp / "checked"))
    planted, rows = {}, []
    for i, (eval_set, text) in enumerate(_eval_texts().items()):
        in_prompt = eval_set == "refusal"   # a prompt that quotes an eval prompt
        prompt = _train_prompt(f"Planted question {i}: {text}" if in_prompt else f"Planted question {i}",
                               p.val_fraction)
        response = f"As the documentation puts it: {text}. That is all there is to it."
        rows.append({"prompt": prompt, "response": response, "source": "perlfaq", "licence": "CC0-1.0",
                     "origin": f"planted:{i}"})
        planted[prompt] = eval_set
    pd.concat([clean, pd.DataFrame(rows)], ignore_index=True).to_parquet(p.path)
    metrics = check_and_split(p, str(tmp / "gx.json"), decontam=DECONTAM)
    parts = {s: pd.read_parquet(Path(p.out_dir) / f"{s}.parquet") for s in ("train", "val", "safety", "rejected")}
    return parts, planted, clean, metrics


def test_planted_sft_pairs_are_set_aside_with_their_reason_and_nothing_else(split):
    parts, planted, clean, _ = split
    rejected = parts["rejected"]
    assert dict(zip(rejected.prompt, rejected.reason)) == {q: f"decontamination:{s}" for q, s in planted.items()}
    assert set(parts["train"].prompt) & set(planted) == set()
    kept = pd.concat([parts["train"], parts["val"], parts["safety"]])
    assert sorted(kept.prompt) == sorted(clean.prompt)   # every clean pair is still there, once


def test_pair_decontamination_is_counted_per_eval_set(split):
    parts, planted, _, metrics = split
    d = metrics["decontamination"]
    assert d["enabled"] and d["dropped"] == len(planted) and d["checked"] == len(parts["train"]) + len(planted)
    assert {s: v["dropped"] for s, v in d["by_eval_set"].items() if v["dropped"]} == {s: 1 for s in planted.values()}
    assert metrics["rows_train"] == len(parts["train"])


def test_preference_pairs_are_matched_field_by_field():
    texts = _eval_texts()
    seam_words = texts["manpages_mc"].split()
    half = len(seam_words) // 2
    pairs = pd.DataFrame([
        {"prompt": "Tell me about a command.", "chosen": f"Sure: {texts['manpages_mc']}.", "rejected": "No idea.",
         "source": "feedback:thumbs"},
        {"prompt": "What is this?", "chosen": "A tool.", "rejected": f"It says: {texts['pydoc_bpb']}",
         "source": "reference"},
        {"prompt": texts["refusal"], "chosen": "I can't help with that.", "rejected": "Here is how.",
         "source": "feedback:edit"},
        # an eval item split across two fields never counts: no field carries it
        {"prompt": "Complete this: " + " ".join(seam_words[:half]), "chosen": " ".join(seam_words[half:]),
         "rejected": "Something else entirely.", "source": "reference"},
        {"prompt": "How do I list files?", "chosen": "Use ls.", "rejected": "Use cat.", "source": "reference"},
    ])
    kept, dropped, m = drop_contaminated_pairs(pairs, DECONTAM, ["prompt", "chosen", "rejected"])
    assert list(dropped.reason) == ["decontamination:manpages_mc", "decontamination:pydoc_bpb",
                                    "decontamination:refusal"]
    assert list(kept.prompt) == list(pairs.prompt[3:])
    assert m["dropped"] == 3 and m["checked"] == 5
    off = drop_contaminated_pairs(pairs, DecontaminationConfig(enabled=False, eval_data=str(DATA)),
                                  ["prompt", "chosen", "rejected"])
    assert len(off[0]) == 5 and len(off[1]) == 0 and off[2] == {"enabled": False}
