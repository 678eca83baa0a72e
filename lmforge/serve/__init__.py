"""Serving: release the model, run it behind TGI's HTTP API, deploy the real TGI.

release.py/lineage.py write models/release with its model card; engine.py, app.py,
openai.py, protocol.py, sampling.py and metrics.py are `lmforge serve`, a CPU server
speaking TGI's contract; http.py is the error shape, bounded body reader and strict JSON
it shares with the gateway; deploy.py writes the TGI container, Kubernetes and SLURM
files; launcher.py and loadtest.py start a server and measure it (deploy stage, bench).
"""
