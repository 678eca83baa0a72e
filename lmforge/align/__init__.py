"""Post-training: instruction data, SFT, preference pairs, reward model and DPO with TRL, and their gates."""
