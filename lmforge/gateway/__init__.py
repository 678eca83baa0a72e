"""`lmforge gateway`: the door in front of any generation server.

A long-running service: ``app`` is the FastAPI factory (auth, feedback, review, the
web page in ``web/``), ``proxy`` the generation routes, ``upstream``/``openai_compat``
the client of TGI, vLLM or `lmforge serve`, ``state`` what the routes share,
``metrics`` its Prometheus registry, ``safety`` and ``review`` the moderation hooks.
Every request lands in the feedback store (``lmforge.feedback.store``).
"""
