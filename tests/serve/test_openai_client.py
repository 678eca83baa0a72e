"""The official `openai` Python client against lmforge serve's /v1 routes.

TGI's successors (vLLM, SGLang) are used through OpenAI's API and client, so lmforge
serve must answer that client too: chat with and without streaming, completions and
the model list, with the same greedy text whichever route asked.
"""
from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai")


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_list_names_the_served_model(client, server):
    models = client.models.list().data
    info = httpx.get(server.url + "/info").json()
    assert [m.id for m in models] == [info["model_id"]]


def test_chat_streamed_equals_chat_whole(client):
    msgs = [{"role": "user", "content": "What is Debian?"}]
    whole = client.chat.completions.create(model="tgi", messages=msgs, max_tokens=6)
    assert whole.choices[0].message.role == "assistant" and 1 <= whole.usage.completion_tokens <= 6
    chunks = list(client.chat.completions.create(model="tgi", messages=msgs, max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # the stream holds back an incomplete trailing UTF-8 character; the whole answer shows it as U+FFFD
    assert whole.choices[0].message.content.startswith(text)
    assert not whole.choices[0].message.content[len(text):].strip("\ufffd")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert [c.usage for c in chunks if c.usage][-1].completion_tokens == whole.usage.completion_tokens


def test_completions_match_generate(client, server):
    out = client.completions.create(model="tgi", prompt="Hello world", max_tokens=5)
    gen = httpx.post(server.url + "/generate", json={
        "inputs": "Hello world", "parameters": {"max_new_tokens": 5, "details": True}}).json()
    assert out.choices[0].text == gen["generated_text"]
    assert out.usage.completion_tokens == gen["details"]["generated_tokens"]
    streamed = client.completions.create(model="tgi", prompt="Hello world", max_tokens=5, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == gen["generated_text"]


def test_bad_request_is_an_api_error(client):
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="tgi", prompt="Hello", max_tokens=5, temperature=-1)
