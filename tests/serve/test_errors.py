"""Bad input gets a 4xx in TGI's error shape, never a 5xx; overload is 429; a failed
generation is 424 and the server keeps serving."""
from __future__ import annotations

import json
import time

import httpx
import pytest

LONG = "Hello world " * 80  # > 64 input tokens

BAD = [
    ("/generate", b"{not json", "not valid JSON"),
    ("/generate", b"[1, 2]", "JSON object"),
    ("/generate", {"inputs": 5}, "`inputs` must be a string"),
    ("/generate", {"inputs": ""}, "cannot be empty"),
    ("/generate", {"inputs": "hi", "parameters": "fast"}, "`parameters` must be a JSON object"),
    ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": -1}}, "strictly positive"),
    ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 0}}, "strictly positive"),
    ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": "10"}}, "must be an integer"),
    ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": True}}, "must be an integer"),
    ("/generate", {"inputs": "hi", "parameters": {"temperature": 0}}, "`temperature` must be strictly positive"),
    ("/generate", {"inputs": "hi", "parameters": {"temperature": "hot"}}, "must be a number"),
    ("/generate", {"inputs": "hi", "parameters": {"top_p": 1.5}}, "`top_p`"),
    ("/generate", {"inputs": "hi", "parameters": {"top_k": 0}}, "`top_k`"),
    ("/generate", {"inputs": "hi", "parameters": {"typical_p": 1.0}}, "`typical_p`"),
    ("/generate", {"inputs": "hi", "parameters": {"seed": -3}}, "`seed`"),
    ("/generate", {"inputs": "hi", "parameters": {"stop": ["a", "b", "c", "d", "e"]}}, "up to 4"),
    ("/generate", {"inputs": "hi", "parameters": {"stop": "a"}}, "list of strings"),
    ("/generate", {"inputs": "hi", "parameters": {"best_of": 2}}, "`best_of`"),
    ("/generate", {"inputs": "hi", "parameters": {"grammar": {"type": "json", "value": {}}}}, "grammar"),
    ("/generate", {"inputs": "hi", "parameters": {"truncate": 1000}}, "`truncate`"),
    ("/generate", {"inputs": LONG, "parameters": {"max_new_tokens": 2}}, "`inputs` must have less than 64"),
    ("/generate", {"inputs": "Hello world " * 4, "parameters": {"max_new_tokens": 120}}, "must be <= 128"),
    ("/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": -5}}, "strictly positive"),
    ("/generate_stream", {"inputs": "hi", "parameters": {"decoder_input_details": True}}, "streaming"),
    ("/", {"inputs": "hi", "stream": "yes"}, "`stream` must be a boolean"),
    ("/tokenize", {"inputs": None}, "`inputs` must be a string"),
    ("/v1/chat/completions", {"messages": []}, "non-empty list"),
    ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "string `role`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 3}]}, "content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, "`n`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "strictly"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "`tools`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}, "less than 64"),
    ("/v1/completions", {"prompt": 7}, "`prompt`"),
    ("/v1/completions", {"prompt": ["a"] * 9}, "at most"),
]


@pytest.mark.parametrize("path,body,needle", BAD, ids=[f"{p}:{n}" for p, _, n in BAD])
def test_bad_input_is_422_in_tgi_shape(server, path, body, needle):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(server.url + path, timeout=30, **kw)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error_type"] == "validation" and needle in err["error"], err


def test_unknown_route_and_method_are_json(server):
    r = httpx.get(server.url + "/nope")
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"
    r = httpx.get(server.url + "/generate")
    assert r.status_code == 405 and "error" in r.json()


def test_validation_failures_are_counted(server):
    before = server.metric('tgi_request_failure{err="validation"}')
    httpx.post(server.url + "/generate", content=b"{")
    assert server.metric('tgi_request_failure{err="validation"}') == before + 1


def test_full_queue_answers_429_and_frees_slots(tiny_model, server_factory):
    srv = server_factory(tiny_model, max_concurrent_requests=1, max_total_tokens=256, max_input_tokens=32)
    model = srv.state.engine.model
    forward = model.forward

    def slow(*a, **kw):  # ~4 s for the 200 tokens below, so the request surely holds its slot
        time.sleep(0.02)
        return forward(*a, **kw)

    model.forward = slow
    try:
        body = {"inputs": "Hello", "parameters": {"max_new_tokens": 200}}
        with httpx.stream("POST", srv.url + "/generate_stream", json=body, timeout=60) as held:
            assert held.status_code == 200
            lines = held.iter_lines()  # keep the iterator: dropping it would close the response
            next(lines)  # the first token is out: the request holds the only slot
            r = httpx.post(srv.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
            assert r.status_code == 429 and r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
            r = httpx.post(srv.url + "/generate_stream", json={"inputs": "hi"})
            assert r.status_code == 429
        # the client hung up mid-stream: its slot is freed and its row cancelled
        for _ in range(100):
            r = httpx.post(srv.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
            if r.status_code == 200:
                break
            time.sleep(0.05)
        assert r.status_code == 200
        assert srv.metric('tgi_request_failure{err="overloaded"}') == 2
    finally:
        srv.stop()


def test_failed_forward_is_424_and_server_recovers(server):
    model = server.state.engine.model
    original = model.forward

    def broken(*a, **kw):
        raise RuntimeError("simulated device failure")

    model.forward = broken
    try:
        r = httpx.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
        events = httpx.post(server.url + "/generate_stream", json={"inputs": "hi"}).text
    finally:
        model.forward = original
    assert r.status_code == 424 and r.json()["error_type"] == "generation"
    assert "simulated device failure" in json.loads(events.split("data:", 1)[1])["error"]
    ok = httpx.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
    assert ok.status_code == 200
