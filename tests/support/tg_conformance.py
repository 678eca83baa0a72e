"""The official `text-generation` client (0.7.0), unchanged, against a running `lmforge serve`.

Run by test_client.py with the interpreter of an isolated venv that holds only this
client, because its `huggingface-hub<1.0` pin must never reach the project's
environment: `python tg_conformance.py CHECK URL` exits 0 when CHECK passes.
"""
from __future__ import annotations

import asyncio
import sys

from text_generation import AsyncClient, Client
from text_generation.errors import OverloadedError, ValidationError


def _raises(exc_type, match: str, fn) -> None:
    try:
        fn()
    except exc_type as e:
        assert match in str(e), f"{exc_type.__name__} without {match!r}: {e}"
    else:
        raise AssertionError(f"no {exc_type.__name__}")


def _chat_stream(chunks):
    """Read chunks up to the one with finish_reason: the 0.7.0 client raises on TGI's closing [DONE]."""
    out = []
    for c in chunks:
        out.append(c)
        if c.choices[0].finish_reason is not None:
            break
    return out


def generate_stream_chat(url: str) -> None:
    client = Client(url, timeout=60)
    r = client.generate("Hello world", max_new_tokens=6, decoder_input_details=True, top_n_tokens=2)
    assert r.details.generated_tokens == len(r.details.tokens) <= 6 and r.details.prefill
    events = list(client.generate_stream("Hello world", max_new_tokens=6))
    assert [e.token.id for e in events] == [t.id for t in r.details.tokens]
    assert events[-1].generated_text == r.generated_text
    assert events[-1].details.finish_reason == r.details.finish_reason
    chat = client.chat([{"role": "user", "content": "What is Debian?"}], max_tokens=5)
    assert chat.choices[0].message.role == "assistant" and chat.usage["completion_tokens"] <= 5
    chunks = _chat_stream(client.chat([{"role": "user", "content": "What is Debian?"}], max_tokens=5, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == chat.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == chat.choices[0].finish_reason


def sampling_and_errors(url: str) -> None:
    client = Client(url, timeout=60)
    kw = dict(max_new_tokens=5, do_sample=True, seed=3, temperature=0.8, top_p=0.9, top_k=20)
    a, b = client.generate("Hi", **kw), client.generate("Hi", **kw)
    assert a.generated_text == b.generated_text and a.details.seed == 3
    _raises(ValidationError, "less than 64", lambda: client.generate("Hello world " * 80, max_new_tokens=2))
    _raises(ValidationError, "must be <= 128", lambda: list(client.generate_stream("Hello", max_new_tokens=500)))


def async_client(url: str) -> None:
    async def main():
        client = AsyncClient(url, timeout=60)
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


def overload(url: str) -> None:
    """With one request slot held by a long stream, the next request is TGI's 429 `overloaded`."""
    stream = Client(url, timeout=60).generate_stream("Hello", max_new_tokens=200)
    next(stream)
    try:
        Client(url).generate("hi", max_new_tokens=2)
    except OverloadedError:
        return
    finally:
        stream.close()
    raise AssertionError("no OverloadedError")


if __name__ == "__main__":
    globals()[sys.argv[1]](sys.argv[2])
    print("ok")
