"""Dataset builders: the offline scripts' library (scripts/build_instructions.py, scripts/build_evals.py).

Why a room of their own, at the top: they read the machine's documentation packages and
import what both post-training and evaluation need (the safety split, the decontamination
rules) to write the committed data in data/instructions/ and evals/data/. No stage imports
them, so no pipeline room depends on where the items came from.
"""
