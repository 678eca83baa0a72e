"""Greedy rows with a repetition penalty, chosen together, pick what each row's own `choose` picks."""
from __future__ import annotations

import copy

import torch

from lmforge.serve.sampling import SamplingParams, TokenChooser, choose_penalised


def test_batched_penalised_choice_equals_each_rows_choose():
    g = torch.Generator().manual_seed(0)
    vocab = 300
    for trial in range(40):
        rows = int(torch.randint(2, 9, (1,), generator=g))
        choosers = []
        for r in range(rows):
            prompt = torch.randint(0, vocab, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g).tolist()
            rp = [1.1, 1.3, 0.8, 2.0][(trial + r) % 4 if trial % 3 else 1]   # one shared value, or a mix
            choosers.append(TokenChooser(SamplingParams(max_new_tokens=8, repetition_penalty=rp), prompt, vocab))
        assert all(c.penalised and not c.plain for c in choosers)
        logits = torch.randn(rows, vocab, generator=g) * 4
        logits[0, choosers[0].counts.nonzero()[0, 0]] = 50.0   # a seen token that wins even penalised
        alone = [copy.deepcopy(c) for c in choosers]
        want = [c.choose(logits[i].clone())[:2] for i, c in enumerate(alone)]
        got = choose_penalised(choosers, logits)
        assert got == want
        assert all(torch.equal(a.counts, b.counts) for a, b in zip(alone, choosers))   # counts advanced alike


def test_plain_and_sampled_rows_are_not_penalised_rows():
    assert not TokenChooser(SamplingParams(max_new_tokens=4), [1, 2], 10).penalised
    assert not TokenChooser(SamplingParams(max_new_tokens=4, repetition_penalty=1.2, do_sample=True, seed=1),
                            [1, 2], 10).penalised
    assert not TokenChooser(SamplingParams(max_new_tokens=4, repetition_penalty=1.2, top_n_tokens=2), [1], 10).penalised
