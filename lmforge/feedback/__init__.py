"""The feedback loop's offline half: the store's format, harvest and drift.

``store`` is the crash-safe append-only JSONL log the gateway writes and the stages
read; ``harvest`` turns acknowledged feedback and review labels into SFT and
preference data; ``drift`` compares live prompts with the training data and says
when retraining is due.
"""
