"""The model folder's default repetition penalty (generation_config.json, as a release ships it)
applies to requests that set none, as vLLM applies it; served greedy = transformers' greedy."""
from __future__ import annotations

import shutil

import httpx
import pytest

PROMPT = "The quick brown fox"
N = 24


@pytest.fixture(scope="module")
def penalised(tiny_model, tmp_path_factory, server_factory):
    from transformers import GenerationConfig

    folder = tmp_path_factory.mktemp("penalty") / "model"
    shutil.copytree(tiny_model, folder)
    gen = GenerationConfig.from_pretrained(folder)
    gen.repetition_penalty = 1.8
    gen.save_pretrained(folder)
    srv = server_factory(folder)
    yield folder, srv
    srv.stop()


def _ids(srv, **params) -> list[int]:
    r = httpx.post(srv.url + "/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": N, **params}},
                   timeout=60)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["details"]["tokens"]]


def _offline(folder, **kw) -> list[int]:
    """transformers' greedy on the folder: it reads generation_config.json's defaults too."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([tok(PROMPT)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, do_sample=False,
                             temperature=None, top_p=None, top_k=None, **kw)
    return out[0, ids.shape[1]:].tolist()


def test_served_default_is_the_folders_penalty(penalised):
    folder, srv = penalised
    assert srv.state.default_repetition_penalty == pytest.approx(1.8)
    default, explicit, off = _ids(srv), _ids(srv, repetition_penalty=1.8), _ids(srv, repetition_penalty=1.0)
    assert default == explicit   # no client penalty: the folder's applies
    assert default != off        # and it changes what greedy says
    # served = offline, with the default and with the penalty switched off by the client
    assert default == _offline(folder)[:len(default)]
    assert off == _offline(folder, repetition_penalty=1.0)[:len(off)]


def test_folder_without_a_penalty_serves_plain_greedy(server):
    assert server.state.default_repetition_penalty is None
    assert _ids(server) == _ids(server, repetition_penalty=1.0)
