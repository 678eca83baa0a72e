"""Thin entry modules, one per pipeline stage, called by dvc.yaml and the Snakefile."""
