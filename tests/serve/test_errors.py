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
    ("/v1/chat/completions", {"messages": []}, "`messages`"),
    ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "`messages.0.role`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True,
                              "stream_options": "yes"}, "`stream_options`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True,
                              "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages.0.content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, "`n`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "strictly"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "`tools`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}, "less than 64"),
    ("/v1/completions", {"prompt": 7}, "`prompt`"),
    ("/v1/completions", {"prompt": ["a"] * 9}, "at most"),
]


def error_message(path: str, r: httpx.Response) -> str:
    """The error's message, checking the route's dialect: OpenAI's shape on /v1/*, TGI's elsewhere."""
    err = r.json()
    if path.startswith("/v1/"):
        assert set(err) == {"error"} and set(err["error"]) == {"message", "type", "param", "code"}, err
        assert err["error"]["type"] == "invalid_request_error", err
        return err["error"]["message"]
    assert set(err) == {"error", "error_type"} and err["error_type"] == "validation", err
    return err["error"]


@pytest.mark.parametrize("path,body,needle", BAD, ids=[f"{p}:{n}" for p, _, n in BAD])
def test_bad_input_is_422_in_the_routes_dialect(server, path, body, needle):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(server.url + path, timeout=30, **kw)
    assert r.status_code == 422, r.text
    assert needle in error_message(path, r)


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
    engine = server.state.engine
    original = engine.model.forward, engine._lean   # the model's forward and the lean step (fast_decode)

    def broken(*a, **kw):
        raise RuntimeError("simulated device failure")

    engine.model.forward = broken
    engine._lean = broken if engine._lean is not None else None
    try:
        r = httpx.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
        events = httpx.post(server.url + "/generate_stream", json={"inputs": "hi"}).text
    finally:
        engine.model.forward, engine._lean = original
    assert r.status_code == 424 and r.json()["error_type"] == "generation"
    assert "simulated device failure" in json.loads(events.split("data:", 1)[1])["error"]
    ok = httpx.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
    assert ok.status_code == 200


# ---- hostile bodies: non-finite numbers, lone surrogates, deep nesting, oversized ----------------
NON_FINITE = [
    ("/generate", b'{"inputs": "hi", "parameters": {"temperature": NaN}}'),
    ("/generate", b'{"inputs": "hi", "parameters": {"top_p": Infinity}}'),
    ("/generate", b'{"inputs": "hi", "parameters": {"repetition_penalty": -Infinity}}'),
    ("/generate", b'{"inputs": "hi", "parameters": {"typical_p": 1e999}}'),  # overflows to inf
    ("/generate", b'{"inputs": "hi", "parameters": {"temperature": 1' + b"0" * 400 + b"}}"),  # int past float
    ("/generate_stream", b'{"inputs": "hi", "parameters": {"frequency_penalty": NaN}}'),
    ("/", b'{"inputs": "hi", "parameters": {"temperature": NaN, "top_k": 5}}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'),
    ("/v1/completions", b'{"prompt": "hi", "top_p": Infinity}'),
]


@pytest.mark.parametrize("path,raw", NON_FINITE, ids=[f"{p}:{r[-36:]!r}" for p, r in NON_FINITE])
def test_non_finite_numbers_are_422_not_a_failed_batch(server, path, raw):
    r = httpx.post(server.url + path, content=raw, timeout=30)
    assert r.status_code == 422, r.text
    error_message(path, r)


HOSTILE = {
    "escaped lone surrogate": lambda s: s.replace("TEXT", "\\ud800"),
    "lone low surrogate in a nested list": lambda s: s[:-1] + ', "tags": [["\\udfff"]]}',
    "raw UTF-8 surrogate bytes": lambda s: s.replace("TEXT", "\udced\udca0\udc80"),  # bytes ED A0 80
    "surrogate in a key": lambda s: s[:-1] + ', "\\udbff": 1}',
    "nested 100,000 levels": lambda s: "[" * 100_000 + "]" * 100_000,
    "deep inside an object": lambda s: s[:-1] + ', "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
}
SHAPES = {
    "/generate": '{"inputs": "TEXT", "parameters": {"max_new_tokens": 2}}',
    "/generate_stream": '{"inputs": "TEXT", "parameters": {"max_new_tokens": 2}}',
    "/": '{"inputs": "TEXT", "stream": true}',
    "/tokenize": '{"inputs": "TEXT"}',
    "/v1/chat/completions": '{"messages": [{"role": "user", "content": "TEXT"}], "max_tokens": 2}',
    "/v1/completions": '{"prompt": "TEXT", "max_tokens": 2}',
}


def hostile_bodies(shapes: dict) -> list:
    """(path, raw bytes) for every hostile body on every route shape."""
    return [pytest.param(path, make(shape).encode("utf-8", "surrogateescape"), id=f"{path}:{name}")
            for path, shape in shapes.items() for name, make in HOSTILE.items()]


@pytest.mark.parametrize("path,raw", hostile_bodies(SHAPES))
def test_undecodable_bodies_are_4xx_in_the_routes_dialect(server, path, raw):
    r = httpx.post(server.url + path, content=raw, timeout=30)
    assert r.status_code == 422, r.text
    error_message(path, r)
    ok = httpx.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
    assert ok.status_code == 200


def test_oversized_bodies_are_413_with_and_without_content_length(server):
    limit = server.state.limits.payload_limit
    big = b'{"inputs": "' + b"x" * (limit + 1) + b'"}'

    def chunked():
        yield b'{"inputs": "'
        for _ in range(limit // 100_000 + 2):
            yield b"x" * 100_000
        yield b'"}'

    for content in (big, chunked()):
        r = httpx.post(server.url + "/generate", content=content, timeout=30)
        assert r.status_code == 413, r.text
        assert r.json()["error_type"] == "validation" and str(limit) in r.json()["error"]
    pad = b"x" * (limit - 100)  # an ignored key: a body just under the limit is read in full
    ok = httpx.post(server.url + "/generate", content=b'{"inputs": "hi", "parameters": {"max_new_tokens": 1}, '
                    b'"pad": "' + pad + b'"}', timeout=30)
    assert ok.status_code == 200, ok.text


def test_errors_the_input_caused_are_4xx_and_the_rest_500_all_in_json():
    import warnings

    from starlette.applications import Starlette
    from starlette.routing import Route

    from lmforge.serve.http import exception_handlers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette nudges toward httpx2; httpx works
        from starlette.testclient import TestClient

    def raising(exc):
        async def route(request):
            raise exc
        return route

    app = Starlette(exception_handlers=exception_handlers(), routes=[
        Route("/encode", raising(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))),
        Route("/deep", raising(RecursionError("maximum recursion depth exceeded"))),
        Route("/bug", raising(KeyError("oops")))])
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, status, kind in [("/encode", 422, "validation"), ("/deep", 422, "validation"),
                                   ("/bug", 500, "internal"), ("/missing", 404, "not_found")]:
            r = client.get(path)
            assert (r.status_code, r.json()["error_type"]) == (status, kind), r.text
