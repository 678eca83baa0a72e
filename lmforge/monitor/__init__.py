"""Monitoring and the feedback loop: the gateway, its web page, and harvest.

``gateway``/``proxy`` put auth, a durable request log, metrics and feedback in
front of any TGI endpoint; ``store`` is the crash-safe append-only JSONL store
they write; ``harvest``/``drift`` turn that store back into training data and
tell when retraining is due.
"""
