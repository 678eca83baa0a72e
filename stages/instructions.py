"""Stage `instructions`: GX-check the committed instruction sample and split it."""
from lmforge.align.instructions import InstructionsParams, check_and_split
from lmforge.config import section
from lmforge.io import write_json
from lmforge.stage import run_stage


def main() -> None:
    p = section(InstructionsParams, "instructions")
    metrics = check_and_split(p, "metrics/gx/instructions.json")
    write_json("metrics/instructions.json", metrics)
    print(metrics)


if __name__ == "__main__":
    run_stage(main)
