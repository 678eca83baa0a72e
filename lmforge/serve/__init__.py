"""`lmforge serve`: the live model server, speaking TGI's and OpenAI's HTTP APIs on CPU.

engine.py batches generation, sampling.py picks tokens, app.py is the FastAPI factory,
protocol.py/openai.py the two dialects, requests.py the pending-request plumbing,
http.py the error shape, bounded body reader and strict JSON it shares with the
gateway, metrics.py the TGI-named Prometheus metrics, launcher.py starts a server and
waits for its /health (deploy stage, bench, tests). Offline release work lives in
lmforge.release, the gateway in lmforge.gateway.
"""
