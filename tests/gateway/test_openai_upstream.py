"""The gateway in front of an OpenAI-only upstream (vLLM-like): detected, translated, logged.

The stand-in (openai_standin.py) offers only /v1/*, /health and /metrics, as vLLM does:
the gateway must find the model version on /v1/models, serve TGI's /generate and
/generate_stream through /v1/completions, pass chat through, and hand on upstream errors
in TGI's error shape.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from lmforge.testing.gateway import gateway_before, logged


STANDIN = Path(__file__).parents[1] / "support" / "openai_standin.py"


@pytest.fixture(scope="module")
def oai_gateway(review_data, tmp_path_factory):
    with gateway_before(STANDIN, tmp_path_factory.mktemp("oai"), review_data) as gw:
        yield gw


def test_model_version_comes_from_v1_models(oai_gateway):
    info = httpx.get(oai_gateway.url + "/info").json()
    assert info["upstream_kind"] == "openai" and info["model_id"] == "standin/tiny-chat"
    assert info["model_version"] == "standin/tiny-chat@/models/tiny-chat-rev7"


def test_generate_goes_through_completions_in_tgi_shape(oai_gateway):
    r = httpx.post(oai_gateway.url + "/generate", headers=oai_gateway.auth, timeout=30,
                   json={"inputs": "Debian is a", "parameters": {"max_new_tokens": 3, "details": True}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generated_text"] == " w0 w1 w2"
    assert body["details"]["generated_tokens"] == 3 and body["details"]["finish_reason"] == "length"
    rec = logged(oai_gateway, r.headers["x-request-id"])
    assert (rec["input_tokens"], rec["output_tokens"], rec["completion"]) == (3, 3, " w0 w1 w2")
    assert rec["model_version"] == "standin/tiny-chat@/models/tiny-chat-rev7"


def test_generate_stream_ends_with_text_and_details(oai_gateway):
    with httpx.stream("POST", oai_gateway.url + "/generate_stream", headers=oai_gateway.auth, timeout=30,
                      json={"inputs": "Python is", "parameters": {"max_new_tokens": 4, "details": True}}) as r:
        events = [json.loads(ln[5:]) for ln in r.iter_lines() if ln.startswith("data:")]
        rid = r.headers["x-request-id"]
    assert [e["token"]["text"] for e in events] == [" w0", " w1", " w2", " w3"]
    assert events[-1]["generated_text"] == " w0 w1 w2 w3" and events[-1]["details"]["generated_tokens"] == 4
    assert all(e["details"] is None for e in events[:-1])
    rec = logged(oai_gateway, rid)
    assert rec["status"] == 200 and rec["input_tokens"] == 2 and rec["output_tokens"] == 4


def test_chat_passes_through_streamed_or_not(oai_gateway):
    msgs = [{"role": "user", "content": "Say hi"}]
    r = httpx.post(oai_gateway.url + "/v1/chat/completions", headers=oai_gateway.auth, timeout=30,
                   json={"model": "standin/tiny-chat", "messages": msgs, "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == " w0 w1"
    with httpx.stream("POST", oai_gateway.url + "/v1/chat/completions", headers=oai_gateway.auth, timeout=30,
                      json={"model": "standin/tiny-chat", "messages": msgs, "max_tokens": 2, "stream": True}) as s:
        lines = [ln for ln in s.iter_lines() if ln.startswith("data:")]
        rid = s.headers["x-request-id"]
    assert lines[-1] == "data:[DONE]"
    rec = logged(oai_gateway, rid)
    assert (rec["completion"], rec["input_tokens"], rec["output_tokens"]) == (" w0 w1", 2, 2)


def test_upstream_errors_keep_their_status_in_tgi_shape(oai_gateway):
    r = httpx.post(oai_gateway.url + "/generate", headers=oai_gateway.auth, timeout=30,
                   json={"inputs": "too long", "parameters": {"max_new_tokens": 5000}})
    assert r.status_code == 400 and set(r.json()) == {"error", "error_type"}
    assert "maximum context length" in r.json()["error"] and r.json()["error_type"] == "validation"
    assert logged(oai_gateway, r.headers["x-request-id"])["status"] == 400
