"""Stage `preferences`: reference-vs-sample and human-feedback pairs for reward and DPO."""
from lmforge.align.common import load_causal_lm, load_tokenizer
from lmforge.align.preferences import PreferenceParams, build_preferences
from lmforge.config import load_params, section
from lmforge.io import atomic_path, write_json
from lmforge.stage import run_stage


def main() -> None:
    p = section(PreferenceParams, "preferences")
    tok, model = load_tokenizer(p.sft_model), load_causal_lm(p.sft_model, "preferences.sft_model")
    train, val, metrics = build_preferences(model, tok, p, load_params()["seed"])
    for name, df in (("train", train), ("val", val)):
        with atomic_path(f"{p.out_dir}/{name}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    write_json("metrics/preferences.json", metrics)
    print(metrics)


if __name__ == "__main__":
    run_stage(main)
