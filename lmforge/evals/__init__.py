"""Evaluation: lm-eval runs (harness), served = offline (served); items are built by lmforge.builders, decontamination is lmforge.decontam."""
