"""Stage `dpo`: rejection sampling, DPO against the SFT reference, final gate, export models/dpo."""
from lmforge.align.common import save_model
from lmforge.align.dpo import DPOStageConfig, train_dpo
from lmforge.align.evaluate import record_and_gate
from lmforge.align.preferences import PreferenceConfig
from lmforge.config import load_params, section
from lmforge.stage import run_stage
from lmforge.train.launch import is_main, relaunch


def main() -> None:
    relaunch("dpo")   # resources.dpo.gpu: N > 1 -> N processes under torchrun
    p, pref = section(DPOStageConfig, "dpo"), section(PreferenceConfig, "preferences")
    model, tok, metrics, curve, samples = train_dpo(p, pref, load_params()["seed"], live="dpo")
    if not is_main():
        return
    record_and_gate("dpo", metrics, curve, p.eval.gate, samples)
    save_model(model, tok, p.out_dir)


if __name__ == "__main__":
    run_stage(main)
