"""Releasing: the trained model as a folder that TGI, vLLM and `lmforge serve` load.

Offline work of the ``release`` and ``deploy`` stages, run once per model and never
inside a server: ``build`` writes models/release and its model card, ``lineage``
traces every artifact back to the crawl shards through dvc.lock, ``deploy`` writes the
engine's container, Kubernetes and SLURM files, ``dashboards`` the Prometheus and
Grafana files, and ``loadtest`` smoke-tests and measures a running endpoint. ``config``
holds the typed ``serve`` and ``deploy`` params those files enforce, ``launcher`` starts
``lmforge serve`` as a subprocess and waits for its /health (deploy stage, bench, tests).
"""
