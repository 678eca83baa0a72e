"""Hostile input, round three, at `lmforge serve`: only finite JSON leaves the server, OpenAI
shapes are checked up front, /tokenize keeps the input limits, max_completion_tokens holds."""
from __future__ import annotations

import json

import httpx
import pytest

CHAT = [{"role": "user", "content": "Hello there"}]


def strict(text: str):
    """JSON as a strict parser reads it: -Infinity, Infinity and NaN are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def events(r: httpx.Response) -> list:
    return [strict(line[5:]) for line in r.text.splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


MASKED = {"do_sample": True, "top_k": 1, "seed": 1, "max_new_tokens": 3}  # all but one token at -inf
EXTREME = 1e-300  # a repetition penalty that turns logits into +-inf and NaN


@pytest.mark.parametrize("path, body", [
    ("/generate", {"inputs": "Hello", "parameters": {**MASKED, "top_n_tokens": 5, "details": True}}),
    ("/generate", {"inputs": "Hello", "parameters": {"repetition_penalty": EXTREME, "top_n_tokens": 5,
                                                     "max_new_tokens": 3, "decoder_input_details": True}}),
    ("/v1/completions", {"prompt": "Hello", "max_tokens": 3, "logprobs": 5, "echo": True,
                         "repetition_penalty": EXTREME}),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "logprobs": True, "top_logprobs": 5,
                              "repetition_penalty": EXTREME}),
], ids=["generate-top_k", "generate-penalty", "completions", "chat"])
def test_out_of_range_logprobs_are_finite_json(server, path, body):
    r = httpx.post(server.url + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    strict(r.text)


@pytest.mark.parametrize("path, body", [
    ("/generate_stream", {"inputs": "Hello", "parameters": {**MASKED, "top_n_tokens": 5}}),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "stream": True, "logprobs": True,
                              "top_logprobs": 5, "repetition_penalty": EXTREME}),
], ids=["generate_stream", "chat-stream"])
def test_streams_carry_only_finite_json(server, path, body):
    r = httpx.post(server.url + path, json=body, timeout=60)
    assert r.status_code == 200 and events(r), r.text
    assert not [e for e in events(r) if "error" in e], r.text


def test_streamed_completion_chunks_send_null_until_the_finish(server):
    r = httpx.post(server.url + "/v1/completions", timeout=60,
                   json={"prompt": "Hello", "max_tokens": 3, "stream": True})
    reasons = [c["choices"][0]["finish_reason"] for c in events(r)]
    assert reasons[:-1] == [None] * (len(reasons) - 1) and reasons[-1] in ("length", "stop")


def test_max_completion_tokens_is_honoured(server):
    r = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                   json={"messages": CHAT, "max_completion_tokens": 2})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 2


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "you"}]}]},
    {"messages": CHAT, "stop": ["\n"], "user": "u-1", "max_completion_tokens": 2},
])
def test_valid_openai_chat_shapes_are_served(server, body):
    r = httpx.post(server.url + "/v1/chat/completions", json={"max_tokens": 2, **body}, timeout=60)
    assert r.status_code == 200, r.text


def test_a_stream_options_that_is_not_an_object_is_a_422_before_streaming(server):
    r = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                   json={"messages": CHAT, "stream": True, "stream_options": 5})
    assert r.status_code == 422 and r.json()["error"]["param"] == "stream_options", r.text


def test_a_tiny_temperature_is_the_callers_422_not_a_failed_generation(server):
    r = httpx.post(server.url + "/generate", timeout=60,
                   json={"inputs": "Hi", "parameters": {"temperature": 1e-300, "max_new_tokens": 2}})
    assert r.status_code == 422 and "temperature" in r.json()["error"], r.text


def test_tokenize_keeps_the_input_limits(server):
    r = httpx.post(server.url + "/tokenize", json={"inputs": "!?" * 990_000}, timeout=60)
    assert r.status_code == 422 and "tokens" in r.json()["error"], r.text[:200]
    assert len(r.content) < 1000
    r = httpx.post(server.url + "/tokenize", json={"inputs": "Hello world " * 30}, timeout=60)  # > 64 tokens
    assert r.status_code == 422, r.text[:200]
    r = httpx.post(server.url + "/tokenize", json={"inputs": "Hello world"}, timeout=60)
    assert r.status_code == 200 and r.json()[0]["start"] == 0


def test_truncate_still_keeps_the_tail_of_a_long_input(server, tokenizer):
    text = "Hello world " * 2000
    r = httpx.post(server.url + "/generate", timeout=60,
                   json={"inputs": text, "parameters": {"truncate": 8, "max_new_tokens": 1,
                                                        "decoder_input_details": True}})
    assert r.status_code == 200, r.text
    ids = [t["id"] for t in r.json()["details"]["prefill"]]
    assert ids == tokenizer(text)["input_ids"][-8:]


def test_the_openai_client_shows_the_servers_message(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="m", messages=CHAT, n=2)
    assert e.value.status_code == 422 and "`n` must be 1" in e.value.message


def test_info_names_a_real_model_sha_and_replies_carry_it(server, tiny_model):
    from lmforge.serve.server import model_sha

    info = httpx.get(server.url + "/info").json()
    assert isinstance(info["model_sha"], str) and len(info["model_sha"]) == 64
    assert info["model_sha"] == model_sha(tiny_model)
    r = httpx.post(server.url + "/generate", json={"inputs": "Hi", "parameters": {"max_new_tokens": 1}})
    assert r.headers["x-model-sha"] == info["model_sha"]


def test_model_sha_follows_the_release_lineage_and_the_weights(tmp_path):
    from lmforge.serve.server import model_sha

    (tmp_path / "model.safetensors").write_bytes(b"a")
    first = model_sha(tmp_path)
    (tmp_path / "README.md").write_text("card")  # the card is not the model
    assert model_sha(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"b")
    assert model_sha(tmp_path) != first
    (tmp_path / "lineage.json").write_text('{"files_sha256": {"model.safetensors": "00"}}')
    assert model_sha(tmp_path) not in (first, None)
