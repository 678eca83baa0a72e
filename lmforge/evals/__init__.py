"""Evaluation: items built offline (items), lm-eval runs (harness), decontamination (decontam)."""
