"""Property-based requests for `lmforge serve` and the gateway: TGI's contract and OpenAI's shapes.

Two sources of requests, run against a live server by tests/serve/test_serve_properties.py and
tests/gateway/test_gateway_properties.py with bounded example counts:

* schemathesis, reading TGI's OpenAPI contract (shared/contracts/tgi-openapi.json), makes
  valid and invalid requests for every operation it can generate for (some of the
  contract's positive schemas use constructs it does not support; their negative cases
  still run), and
* hypothesis strategies for OpenAI's chat and completion requests and TGI's generate body,
  mixing well-formed values with wrong types, out-of-range numbers, odd unicode and
  content given as a list of parts.

The property: no 5xx, and every body is strict JSON (a stream: every event's data), with
no NaN or Infinity.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO.parent / "shared" / "contracts" / "tgi-openapi.json"
EXAMPLES = int(os.environ.get("LMFORGE_PROPERTY_EXAMPLES", "60"))  # CI; the log records larger runs
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))   # every property run, serve's and the gateway's


def contract_strategies() -> list:
    """schemathesis case strategies for each operation and mode it can generate for."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_path(str(CONTRACT))
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    strategy.example()  # raises now if this operation cannot be generated for
            except Exception:  # noqa: BLE001 - unsupported schema part or nothing to negate
                continue
            out.append(strategy)
    return out


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def check_reply(r, path: str) -> None:
    """The property: not a 5xx, and strict JSON (every SSE event's data too). ``r`` is an httpx or
    a schemathesis response (whose headers map to lists)."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code in (204, 304) or (not r.content and r.status_code == 200):
        return
    ctype = r.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if ctype.startswith("text/event-stream"):
        for line in r.text.splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                _strict(line[5:])
    elif path == "/metrics":
        return  # Prometheus' text format, by contract
    elif ctype.startswith("text/html"):
        return
    else:
        _strict(r.text)


text = st.text(max_size=40) | st.sampled_from(["Hello", "What is Debian?", "\u0000", "\ud7ff\ue000", " " * 10])
number = st.one_of(st.integers(-10, 300), st.floats(allow_nan=False, allow_infinity=False), st.just(1e-300),
                   st.just(0), st.booleans(), st.none(), text)
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                        | text, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
                        max_leaves=6)
part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "bogus"]), "text": text}) | anything
content = text | st.lists(part, max_size=3) | st.none() | st.integers()
message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool", "bogus"]),
                                 "content": content}) | st.fixed_dictionaries({"content": text}) | anything
small = st.integers(-3, 6) | st.none() | text


def _optional(**fields) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional=fields)


_OAI_COMMON = dict(model=text | st.none(), stream=st.booleans() | text | st.none(),
                   stream_options=st.fixed_dictionaries({}, optional={"include_usage": st.booleans() | text})
                   | anything,
                   max_tokens=small, temperature=number, top_p=number, n=small, seed=small,
                   stop=text | st.lists(text, max_size=5) | st.integers(), user=text | st.integers(),
                   frequency_penalty=number, presence_penalty=number, logit_bias=anything, bogus=anything)

chat_bodies = st.builds(lambda req, msgs: {**req, "messages": msgs}, _optional(
    **_OAI_COMMON, max_completion_tokens=small, logprobs=st.booleans() | small, top_logprobs=small,
    tools=anything, response_format=anything), st.lists(message, max_size=4) | anything)
completion_bodies = st.builds(lambda req, prompt: {**req, "prompt": prompt}, _optional(
    **_OAI_COMMON, logprobs=small, echo=st.booleans() | text, suffix=text),
    text | st.lists(text, max_size=3) | st.lists(st.integers(-1, 300), max_size=5) | anything)
generate_bodies = st.fixed_dictionaries({"inputs": text | anything}, optional={"parameters": _optional(
    max_new_tokens=small, temperature=number, top_p=number, top_k=small, typical_p=number,
    repetition_penalty=number, frequency_penalty=number, seed=small, stop=st.lists(text, max_size=5) | text,
    top_n_tokens=small, details=st.booleans() | text, decoder_input_details=st.booleans(), do_sample=st.booleans(),
    truncate=small, return_full_text=st.booleans(), best_of=small) | anything, "stream": st.booleans() | text})

OPENAI_REQUESTS = st.one_of(st.tuples(st.just("/v1/chat/completions"), chat_bodies),
                            st.tuples(st.just("/v1/completions"), completion_bodies),
                            st.tuples(st.sampled_from(["/generate", "/generate_stream", "/"]), generate_bodies))


def rss(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
