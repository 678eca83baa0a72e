"""The training loss: fp32 whatever the logits' dtype, without an fp32 copy of bf16 logits,
and training forwards that build no KV cache."""
import pytest
import torch
import torch.nn.functional as F

from lmforge.model import token_cross_entropy


def test_bf16_logits_give_the_fp32_loss_and_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(2, 33, 257) * 4).to(torch.bfloat16)
    y = torch.randint(0, 257, (2, 33))
    y[0, :5] = -100
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    ours = token_cross_entropy(a, y, reduction="mean")
    ref = F.cross_entropy(b.float().reshape(-1, 257), y.reshape(-1), ignore_index=-100)
    ours.backward()
    ref.backward()
    assert ours.dtype == torch.float32 and ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert a.grad.dtype == torch.bfloat16
    assert torch.allclose(a.grad.float(), b.grad.float(), atol=1e-4)
    rows = token_cross_entropy(logits, y, reduction="none")
    assert rows.shape == (66,) and (rows.view(2, 33)[0, :5] == 0).all()


def test_fp32_logits_keep_torchs_cross_entropy_exactly():
    torch.manual_seed(1)
    logits, y = torch.randn(40, 99), torch.randint(0, 99, (40,))
    assert torch.equal(token_cross_entropy(logits, y, reduction="sum"), F.cross_entropy(logits, y, reduction="sum"))


def test_training_forwards_build_no_kv_cache(token_data, tmp_path, monkeypatch):
    from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain
    from transformers import LlamaForCausalLM

    seen, real = [], LlamaForCausalLM.forward

    def spy(self, *a, **kw):
        seen.append(kw.get("use_cache"))
        out = real(self, *a, **kw)
        assert out.past_key_values is None
        return out

    monkeypatch.setattr(LlamaForCausalLM, "forward", spy)
    run_inprocess(tmp_path, TINY_MODEL, tiny_pretrain(*token_data, tmp_path / "models/pretrain", max_steps=1,
                                                      eval_every=1, checkpoint_every=1))
    assert seen and set(seen) == {False}
