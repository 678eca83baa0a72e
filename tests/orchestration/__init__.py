"""Orchestration tests: Snakefile vs dvc.yaml, stand-in SLURM, DVC remote and plots."""
