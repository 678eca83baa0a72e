"""The gateway over a real upstream: auth, request log fields, bad input, feedback, metrics."""
from __future__ import annotations

import httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import ValidationError

from lmforge.feedback.store import FEEDBACK, REQUESTS, read_jsonl
from lmforge.testing.gateway import error_of, logged


@pytest.mark.parametrize("path, body", [
    ("/generate", {"inputs": "hello", "parameters": {"max_new_tokens": 2}}),
    ("/generate_stream", {"inputs": "hello", "parameters": {"max_new_tokens": 2}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/feedback", {"request_id": "x", "rating": "up"}),
    ("/api/review/label", {"doc_id": "r1", "label": "keep", "set": "rejected"}),
])
def test_unauthenticated_writes_get_401_and_write_nothing(gateway, path, body):
    before = [(gateway.store / n).stat().st_size for n in (REQUESTS, FEEDBACK)]
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": "test-key-012345678"}):
        r = httpx.post(gateway.url + path, json=body, headers=headers)
        assert r.status_code == 401 and error_of(path, r)[1] == "authentication"
        if path not in ("/feedback", "/api/review/label"):
            assert r.headers["x-request-id"]  # for support; the line goes to the process log only
    assert [(gateway.store / n).stat().st_size for n in (REQUESTS, FEEDBACK)] == before
    assert httpx.get(gateway.url + "/health").status_code == 200  # reads stay open by default


def test_generate_is_logged_with_every_field_before_the_reply(gateway):
    r = httpx.post(gateway.url + "/generate", headers=gateway.auth, timeout=60,
                   json={"inputs": "Debian is", "parameters": {"max_new_tokens": 5, "details": True}})
    assert r.status_code == 200, r.text
    body, rid = r.json(), r.headers["x-request-id"]
    rec = logged(gateway, rid)  # already on disk when the reply arrived
    assert rec["prompt"] == "Debian is" and rec["completion"] == body["generated_text"]
    assert rec["status"] == 200 and rec["route"] == "/generate" and rec["latency_ms"] > 0
    assert rec["output_tokens"] == body["details"]["generated_tokens"] and rec["input_tokens"] >= 1
    assert rec["cost"] == pytest.approx(rec["input_tokens"] * 0.0005 / 1000
                                        + rec["output_tokens"] * 0.0015 / 1000)
    assert rec["safety"] == {"verdict": "allow", "categories": [], "pii": []}
    info = httpx.get(gateway.url + "/info").json()
    assert rec["model_version"] == info["model_version"] and rec["model_id"] == info["model_id"]


def test_streams_are_logged_with_tokens_and_time_to_first_token(gateway):
    with httpx.stream("POST", gateway.url + "/generate_stream", headers=gateway.auth, timeout=60,
                      json={"inputs": "Python is", "parameters": {"max_new_tokens": 4}}) as r:
        events = [ln for ln in r.iter_lines() if ln.startswith("data:")]
        rid = r.headers["x-request-id"]
    rec = logged(gateway, rid)
    assert len(events) == rec["output_tokens"] and rec["input_tokens"] >= 1 and rec["ttft_ms"] > 0
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", headers=gateway.auth, timeout=60,
                      json={"messages": [{"role": "user", "content": "Hello there"}], "stream": True,
                            "max_tokens": 4}) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data:")]
        rid = r.headers["x-request-id"]
    assert lines[-1] == "data:[DONE]"
    rec = logged(gateway, rid)
    assert rec["prompt"] == "Hello there" and rec["messages"][0]["content"] == "Hello there"
    assert rec["status"] == 200 and rec["input_tokens"] >= 1 and rec["output_tokens"] >= 1


def test_the_hub_client_works_through_the_gateway(gateway, monkeypatch):
    # huggingface_hub refuses every request, localhost included, under HF_HUB_OFFLINE=1
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    client = InferenceClient(model=gateway.url, headers=gateway.auth, timeout=60)
    out = client.text_generation("What is Debian?", max_new_tokens=3, details=True)
    assert out.details.generated_tokens >= 1
    ids = [t.token.id for t in client.text_generation("What is Debian?", max_new_tokens=3, stream=True,
                                                      details=True)]
    assert ids == [t.id for t in out.details.tokens]  # greedy: same answer streamed or not
    with pytest.raises(ValidationError, match="max_new_tokens"):  # TGI error_type kept
        client.text_generation("What is Debian?", max_new_tokens=-1)
    chat = client.chat_completion(messages=[{"role": "user", "content": "Say hi"}], max_tokens=3)
    rec = logged(gateway, next(r["id"] for r in reversed(read_jsonl(gateway.store / REQUESTS))
                               if r["route"] == "/v1/chat/completions" and not r["stream"]))
    assert rec["completion"] == chat.choices[0].message.content and rec["prompt"] == "Say hi"
    assert rec["input_tokens"] == chat.usage.prompt_tokens and rec["output_tokens"] >= 1


@pytest.mark.parametrize("raw, json_body", [
    (b'{"inputs": "hi", "parameters": {', None),
    (None, {"inputs": 5}),
    (None, {"inputs": "hi", "parameters": {"max_new_tokens": -3}}),
    (None, {"inputs": "hi", "parameters": {"max_new_tokens": "many"}}),
    (None, {"inputs": "hi", "parameters": {"bogus": 1}}),
    (None, {"inputs": "word " * 5000, "parameters": {"max_new_tokens": 2}}),
    (None, {"messages": "hi"}),
])
def test_bad_input_gets_a_4xx_in_the_routes_error_shape(gateway, raw, json_body):
    path = "/v1/chat/completions" if json_body and "messages" in json_body else "/generate"
    r = httpx.post(gateway.url + path, headers=gateway.auth, content=raw, json=json_body, timeout=60)
    assert 400 <= r.status_code < 500, r.text
    error_of(path, r)


def test_unsafe_requests_are_refused_and_logged_as_blocked(gateway):
    r = httpx.post(gateway.url + "/generate", headers=gateway.auth,
                   json={"inputs": "How do I make a pipe bomb?", "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 400 and r.json()["error_type"] == "safety"
    rec = logged(gateway, r.headers["x-request-id"])
    assert rec["safety"]["verdict"] == "block" and rec["completion"] is None


def test_feedback_ratings_and_pairwise_choices(gateway):
    def gen(prompt, n):
        r = httpx.post(gateway.url + "/generate", headers=gateway.auth, timeout=60,
                       json={"inputs": prompt, "parameters": {"max_new_tokens": n}})
        return r.headers["x-request-id"]
    a, b, c = gen("Name a shell", 2), gen("Name a shell", 3), gen("Name an editor", 2)
    post = lambda body: httpx.post(gateway.url + "/feedback", headers=gateway.auth, json=body)  # noqa: E731
    ok = post({"request_id": a, "rating": "down", "correction": "bash"})
    assert ok.status_code == 200
    assert post({"chosen": b, "rejected": a}).status_code == 200
    assert post({"chosen": a, "rejected": c}).status_code == 422  # different prompts
    assert post({"request_id": "nope", "rating": "up"}).status_code == 404
    assert post({"request_id": a, "rating": "meh"}).status_code == 422
    fb = {f["id"]: f for f in read_jsonl(gateway.store / FEEDBACK)}
    assert fb[ok.json()["id"]]["correction"] == "bash" and fb[ok.json()["id"]]["request_id"] == a
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'lmforge_gateway_feedback_total{kind="pairwise"}' in metrics
    assert "lmforge_gateway_auth_failures_total" in metrics
    assert 'lmforge_gateway_requests_total{route="/generate",status="200"}' in metrics


def test_review_api_lists_reasons_and_validates_labels(gateway):
    page = httpx.get(gateway.url + "/api/review/docs", params={"set": "rejected"}).json()
    assert page["total"] == 3 and page["reasons"]["language"] == 1
    assert {d["id"]: d["duplicate_of"] for d in page["docs"]}["r3"] == "c1"
    r = httpx.post(gateway.url + "/api/review/label", headers=gateway.auth,
                   json={"doc_id": "missing", "label": "keep", "set": "rejected"})
    assert r.status_code == 404
    r = httpx.post(gateway.url + "/api/review/label", headers=gateway.auth,
                   json={"doc_id": "c2", "label": "maybe", "set": "curated"})
    assert r.status_code == 422


def test_reads_need_the_key_when_configured_and_keys_never_come_from_argv(tmp_path, monkeypatch, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette 1.10 nudges toward httpx2; httpx works
        from starlette.testclient import TestClient

    from lmforge.cli import main
    from lmforge.gateway.app import create_app
    from lmforge.gateway.state import GatewayConfig, load_api_keys

    app = create_app(GatewayConfig(store=str(tmp_path / "store"), data_dir=str(tmp_path), auth_reads=True),
                     "http://127.0.0.1:9", {"k1-secret"})
    with TestClient(app) as client:  # upstream down: the gateway still starts
        assert client.get("/metrics").status_code == 401
        assert client.get("/api/review/docs").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k1-secret"}).status_code == 200
        assert client.get("/").status_code == 200  # the page itself, so a user can enter the key
        r = client.post("/generate", headers={"Authorization": "Bearer k1-secret"},
                        json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
        assert r.status_code == 502 and r.json()["error_type"] == "upstream"  # upstream down: not a 500
    (rec,) = read_jsonl(tmp_path / "store" / REQUESTS)
    assert rec["status"] == 502 and rec["prompt"] == "hi" and "upstream" in rec["error"]
    monkeypatch.delenv("LMFORGE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="no API key"):
        load_api_keys(None)
    (tmp_path / "keys").write_text("# gateway keys\nk2-secret\n")
    assert load_api_keys(str(tmp_path / "keys")) == {"k2-secret"}
    with pytest.raises(SystemExit):
        main(["gateway", "--upstream", "http://x", "--api-key", "k3"])
    err = capsys.readouterr().err
    assert "never taken from the command line" in err and "k3" not in err
    with pytest.raises(SystemExit, match="no API key"):
        main(["gateway", "--upstream", "http://x", "--store", str(tmp_path / "s")])
