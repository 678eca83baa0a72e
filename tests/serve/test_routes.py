"""Every route of TGI's HTTP contract, spoken raw (httpx), against the in-process server."""
from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


def post(server, path, body, **kw):
    return httpx.post(server.url + path, json=body, timeout=60, **kw)


def sse_events(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_generate_returns_tgi_response(server):
    r = post(server, "/generate", {"inputs": "Hello world", "parameters": {"max_new_tokens": 6}})
    assert r.status_code == 200
    body = r.json()
    d = body["details"]
    assert d["finish_reason"] in ("length", "eos_token", "stop_sequence")
    assert d["generated_tokens"] == len(d["tokens"]) <= 6
    assert all(set(t) >= {"id", "text", "logprob", "special"} for t in d["tokens"])
    assert d["tokens"][0]["logprob"] <= 0
    assert isinstance(body["generated_text"], str)


def test_compat_route_is_array_or_stream(server):
    r = post(server, "/", {"inputs": "Hello", "parameters": {"max_new_tokens": 3}})
    assert r.status_code == 200 and isinstance(r.json(), list) and "generated_text" in r.json()[0]
    r = post(server, "/", {"inputs": "Hello", "stream": True, "parameters": {"max_new_tokens": 3}})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1]["details"]["generated_tokens"] == len(events)


def test_generate_stream_matches_generate(server):
    body = {"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 8}}
    full = post(server, "/generate", body).json()
    events = sse_events(post(server, "/generate_stream", body).text)
    assert [e["index"] for e in events] == list(range(len(events)))
    assert [e["token"]["id"] for e in events] == [t["id"] for t in full["details"]["tokens"]]
    assert all(e["generated_text"] is None for e in events[:-1])
    last = events[-1]
    assert last["generated_text"] == full["generated_text"]
    assert last["details"]["input_length"] > 0 and last["details"]["finish_reason"] == full["details"]["finish_reason"]
    streamed = "".join(e["token"]["text"] for e in events if not e["token"]["special"])
    assert streamed == full["generated_text"]


def test_generation_options(server, tokenizer):
    r = post(server, "/generate", {"inputs": "Hello world", "parameters": {
        "max_new_tokens": 4, "return_full_text": True, "decoder_input_details": True, "top_n_tokens": 3}}).json()
    assert r["generated_text"].startswith("Hello world")
    prefill = r["details"]["prefill"]
    assert [t["id"] for t in prefill] == tokenizer("Hello world")["input_ids"]
    assert prefill[0]["logprob"] is None and all(t["logprob"] <= 0 for t in prefill[1:])
    assert all(len(top) == 3 for top in r["details"]["top_tokens"])


def test_stop_sequence_and_truncate(server):
    greedy = post(server, "/generate", {"inputs": "Python is", "parameters": {"max_new_tokens": 12}}).json()
    text = greedy["generated_text"]
    assert greedy["details"]["finish_reason"] == "length" and len(text) >= 6  # the tiny model is deterministic
    stop = text[3:6]
    r = post(server, "/generate", {"inputs": "Python is", "parameters": {"max_new_tokens": 12, "stop": [stop]}})
    d = r.json()
    assert d["details"]["finish_reason"] == "stop_sequence"
    assert stop in d["generated_text"] and len(d["generated_text"]) <= len(text)
    r = post(server, "/generate", {"inputs": "word " * 200, "parameters": {"max_new_tokens": 2, "truncate": 10}})
    assert r.status_code == 200


def test_seeded_sampling_is_reproducible(server):
    body = {"inputs": "Hello", "parameters": {"max_new_tokens": 8, "do_sample": True, "seed": 7, "top_k": 50,
                                              "temperature": 0.9, "top_p": 0.95, "repetition_penalty": 1.2}}
    a, b = post(server, "/generate", body).json(), post(server, "/generate", body).json()
    assert a["generated_text"] == b["generated_text"] and a["details"]["seed"] == 7


def test_tokenize(server):
    r = post(server, "/tokenize", {"inputs": "Hello world"}).json()
    assert "".join(t["text"] for t in r) == "Hello world"
    assert all("Hello world"[t["start"]:t["stop"]] == t["text"] for t in r)


def test_info_health_models(server):
    info = httpx.get(server.url + "/info").json()
    for key in ("model_id", "max_concurrent_requests", "max_best_of", "max_stop_sequences", "max_input_tokens",
                "max_total_tokens", "validation_workers", "max_client_batch_size", "router", "version"):
        assert key in info
    assert info["max_input_tokens"] == 64 and info["max_total_tokens"] == 128
    assert httpx.get(server.url + "/health").status_code == 200
    m = httpx.get(server.url + "/v1/models").json()
    assert m["object"] == "list" and [d["id"] for d in m["data"]] == [info["model_id"]]


def test_chat_completions(server):
    body = {"model": "tgi", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 5, "logprobs": True, "top_logprobs": 2}
    r = post(server, "/v1/chat/completions", body).json()
    assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert r["choices"][0]["finish_reason"] in ("stop", "length")
    assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
    assert len(r["choices"][0]["logprobs"]["content"]) == r["usage"]["completion_tokens"]
    events = sse_events(post(server, "/v1/chat/completions", {**body, "stream": True,
                                                                "stream_options": {"include_usage": True}}).text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and chunks[-1]["usage"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_completions(server):
    r = post(server, "/v1/completions", {"prompt": ["Hello", "Debian is"], "max_tokens": 4}).json()
    assert [c["index"] for c in r["choices"]] == [0, 1] and r["object"] == "text_completion"
    events = sse_events(post(server, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "stream": True}).text)
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    single = post(server, "/v1/completions", {"prompt": "Hello", "max_tokens": 4}).json()
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == single["choices"][0]["text"]


def test_metrics_use_tgi_names(server):
    before = server.metric("tgi_request_count")
    post(server, "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
    text = httpx.get(server.url + "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("tgi_request_count", "tgi_request_success", "tgi_request_duration", "tgi_queue_size",
                 "tgi_request_generated_tokens", "tgi_request_input_length", "tgi_batch_current_size",
                 "tgi_request_mean_time_per_token_duration", "tgi_batch_next_size", "tgi_request_queue_duration"):
        assert name in families, name
    assert "# TYPE tgi_request_count counter" in text and "tgi_request_count_total" not in text
    assert server.metric("tgi_request_count") == before + 1


def test_completions_echo_logprobs_score_the_prompt_as_openai_does(server, tokenizer):
    """What lm-eval's local-completions needs for log-likelihoods: token ids in, the prompt echoed with
    each token's logprob given the ones before it (the first null), the N likeliest tokens per position."""
    ids = tokenizer("Hello world, how are you")["input_ids"]
    r = httpx.post(server.url + "/v1/completions", json={
        "prompt": [ids, ids[:3]], "max_tokens": 1, "temperature": 0, "logprobs": 2, "echo": True}).json()
    full, short = r["choices"]
    lp = full["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ids) + 1
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert lp["tokens"][:len(ids)] == [tokenizer.decode([i]) for i in ids]
    assert full["text"].startswith(tokenizer.decode(ids)) and lp["text_offset"][0] == 0
    gen = httpx.post(server.url + "/generate", json={"inputs": "Hello world, how are you", "parameters": {
        "max_new_tokens": 1, "decoder_input_details": True}}).json()["details"]
    prefill = [t["logprob"] for t in gen["prefill"][1:]]
    assert lp["token_logprobs"][1:len(ids)] == pytest.approx(prefill, abs=1e-4)   # same scores as TGI's route
    assert gen["tokens"][0]["text"] == lp["tokens"][-1]   # greedy, like /generate
    for tok_lp, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:]):
        assert len(top) <= 2 and max(top.values()) >= tok_lp - 1e-6
    assert max(lp["top_logprobs"][-1].values()) == pytest.approx(lp["token_logprobs"][-1])  # greedy pick
    assert len(short["logprobs"]["tokens"]) == 4
    plain = httpx.post(server.url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 2}).json()
    assert plain["choices"][0]["logprobs"] is None and not plain["choices"][0]["text"].startswith("Hello")


@pytest.mark.parametrize("body, needle", [
    ({"prompt": [[1, 2], "text"], "max_tokens": 1}, "`prompt`"),
    ({"prompt": [10 ** 9], "max_tokens": 1}, "token ids"),
    ({"prompt": "Hi", "max_tokens": 1, "logprobs": True}, "`logprobs`"),
    ({"prompt": "Hi", "max_tokens": 1, "logprobs": 9}, "`logprobs`"),
    ({"prompt": "Hi", "max_tokens": 1, "echo": True, "stream": True}, "`echo`"),
])
def test_completions_refuse_bad_scoring_requests(server, body, needle):
    r = httpx.post(server.url + "/v1/completions", json=body)
    assert r.status_code == 422 and needle in r.json()["error"]["message"]
