"""`lmforge serve`: the live model server, speaking TGI's and OpenAI's HTTP APIs on CPU.

engine.py batches generation, sampling.py picks tokens, app.py is the FastAPI factory,
protocol.py/openai.py the two dialects, requests.py the pending-request plumbing,
http.py the error shape, bounded body reader and strict JSON it shares with the
gateway, metrics.py the TGI-named Prometheus metrics. Starting a server as a subprocess
and the deploy targets' typed params live with the offline release work in
lmforge.release (launcher, config); the gateway in lmforge.gateway.
"""
