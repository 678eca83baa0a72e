"""Stage `instructions`: GX-check the committed instruction sample, split it, decontaminate train."""
from lmforge.align.instructions import InstructionsConfig, check_and_split
from lmforge.config import load_params, section
from lmforge.decontam import DecontaminationConfig
from lmforge.io import write_json
from lmforge.stage import run_stage


def main() -> None:
    params = load_params()
    p = section(InstructionsConfig, "instructions", params)
    decontam = section(DecontaminationConfig, "data.decontamination", params)
    metrics = check_and_split(p, "metrics/gx/instructions.json", decontam=decontam)
    write_json("metrics/instructions.json", metrics)
    print(metrics)


if __name__ == "__main__":
    run_stage(main)
