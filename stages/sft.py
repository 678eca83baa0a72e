"""Stage `sft`: fine-tune the base model on the checked instructions, gate, export models/sft."""
from lmforge.align.common import save_model, with_context
from lmforge.align.evaluate import policy_metrics, record_and_gate
from lmforge.align.sft import SFTStageConfig, train_sft
from lmforge.config import load_params, section
from lmforge.stage import run_stage
from lmforge.train.launch import is_main, relaunch


def main() -> None:
    relaunch("sft")   # resources.sft.gpu: N > 1 -> N processes under torchrun
    p = section(SFTStageConfig, "sft")
    p = with_context(p, p.base_model)  # train.max_length: null = the base model's context
    model, tok, metrics, curve = train_sft(p, load_params()["seed"], live="sft")
    if not is_main():
        return
    ev, samples, _ = policy_metrics(model, tok, p.data_dir, p.eval, p.train.max_length, "sft")
    record_and_gate("sft", {**metrics, **ev}, curve, p.eval.gate, samples)
    save_model(model, tok, p.out_dir)


if __name__ == "__main__":
    run_stage(main)
