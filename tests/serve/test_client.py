"""The official `text-generation` client (0.7.0), unchanged, against lmforge serve."""
from __future__ import annotations

import asyncio

import pytest
from text_generation import AsyncClient, Client
from text_generation.errors import OverloadedError, ValidationError


def _chat_stream(chunks):
    """Read chunks up to the one with finish_reason: the 0.7.0 client raises on TGI's closing [DONE]."""
    out = []
    for c in chunks:
        out.append(c)
        if c.choices[0].finish_reason is not None:
            break
    return out


def test_client_generate_stream_chat(server):
    client = Client(server.url, timeout=60)
    r = client.generate("Hello world", max_new_tokens=6, decoder_input_details=True, top_n_tokens=2)
    assert r.details.generated_tokens == len(r.details.tokens) <= 6 and r.details.prefill
    events = list(client.generate_stream("Hello world", max_new_tokens=6))
    assert [e.token.id for e in events] == [t.id for t in r.details.tokens]
    assert events[-1].generated_text == r.generated_text and events[-1].details.finish_reason == r.details.finish_reason
    chat = client.chat([{"role": "user", "content": "What is Debian?"}], max_tokens=5)
    assert chat.choices[0].message.role == "assistant" and chat.usage["completion_tokens"] <= 5
    chunks = _chat_stream(client.chat([{"role": "user", "content": "What is Debian?"}], max_tokens=5, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == chat.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == chat.choices[0].finish_reason


def test_client_sampling_and_errors(server):
    client = Client(server.url, timeout=60)
    a = client.generate("Hi", max_new_tokens=5, do_sample=True, seed=3, temperature=0.8, top_p=0.9, top_k=20)
    b = client.generate("Hi", max_new_tokens=5, do_sample=True, seed=3, temperature=0.8, top_p=0.9, top_k=20)
    assert a.generated_text == b.generated_text and a.details.seed == 3
    with pytest.raises(ValidationError, match="less than 64"):
        client.generate("Hello world " * 80, max_new_tokens=2)
    with pytest.raises(ValidationError, match="must be <= 128"):
        list(client.generate_stream("Hello", max_new_tokens=500))


def test_async_client(server):
    async def main():
        client = AsyncClient(server.url, timeout=60)
        results = await asyncio.gather(*(client.generate(p, max_new_tokens=4) for p in ("Hello", "Debian", "Python")))
        streamed = [e async for e in client.generate_stream("Hello", max_new_tokens=4)]
        chat = await client.chat([{"role": "user", "content": "hi"}], max_tokens=4)
        chunks = []
        async for c in await client.chat([{"role": "user", "content": "hi"}], max_tokens=4, stream=True):
            chunks.append(c)
            if c.choices[0].finish_reason is not None:
                break
        return results, streamed, chat, chunks

    results, streamed, chat, chunks = asyncio.run(main())
    assert all(r.details.generated_tokens >= 1 for r in results)
    assert streamed[-1].generated_text == results[0].generated_text
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == chat.choices[0].message.content


def test_client_sees_overload(tiny_model, server_factory):
    srv = server_factory(tiny_model, max_concurrent_requests=1, max_total_tokens=256, max_input_tokens=32)
    model = srv.state.engine.model
    forward = model.forward
    model.forward = lambda *a, **kw: (__import__("time").sleep(0.02), forward(*a, **kw))[1]
    try:
        stream = Client(srv.url, timeout=60).generate_stream("Hello", max_new_tokens=200)
        next(stream)
        with pytest.raises(OverloadedError):
            Client(srv.url).generate("hi", max_new_tokens=2)
        stream.close()
    finally:
        srv.stop()
