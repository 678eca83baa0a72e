"""Run the tests' tiny SFT through TRL's DeepSpeed integration (one launched process).

``python sft_deepspeed.py WORK BASE INSTR STAGE`` prints ``RESULT {json}``: the loss
curve and what the saved model holds. A separate process because DeepSpeed needs
its own process group (RANK, WORLD_SIZE, ... are set by the test).
"""
import json
import sys
from pathlib import Path

from lmforge.align.common import save_model
from lmforge.align.sft import train_sft
from lmforge.testing.align import SEED, sft_params

if __name__ == "__main__":
    work, base, instr, stage = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    p = sft_params(base, instr, work / "sft", train={"max_steps": 10, "deepspeed": "shared", "zero_stage": stage})
    model, tok, metrics, curve = train_sft(p, SEED, str(work / "sft-work"))
    save_model(model, tok, p.out_dir)
    print("RESULT " + json.dumps({"losses": [c["loss"] for c in curve], "out": p.out_dir}))
