"""Stage `preferences`: reference-vs-sample and human-feedback pairs for reward and DPO,
train pairs that carry an eval item set aside (decontaminated.parquet, with their reason)."""
from lmforge.align.common import load_causal_lm, load_tokenizer
from lmforge.align.preferences import PreferenceConfig, build_preferences
from lmforge.config import load_params, section
from lmforge.decontam import DecontaminationConfig
from lmforge.io import atomic_path, write_json
from lmforge.stage import run_stage


def main() -> None:
    params = load_params()
    p = section(PreferenceConfig, "preferences", params)
    decontam = section(DecontaminationConfig, "data.decontamination", params)
    tok, model = load_tokenizer(p.sft_model), load_causal_lm(p.sft_model, "preferences.sft_model")
    train, val, dropped, metrics = build_preferences(model, tok, p, params["seed"], decontam)
    for name, df in (("train", train), ("val", val), ("decontaminated", dropped)):
        with atomic_path(f"{p.out_dir}/{name}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    write_json("metrics/preferences.json", metrics)
    print(metrics)


if __name__ == "__main__":
    run_stage(main)
