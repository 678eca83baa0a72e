"""SFT: completion-only masking, per-source weights, LoRA merge, any local base model."""
import pandas as pd
import pytest
import torch

from lmforge.testing.align import SEED, sft_params
from lmforge.align.common import load_causal_lm, load_tokenizer, prompt_text, save_model, stop_token_ids
from lmforge.align.sft import build_trainer, train_sft
from lmforge.config import ParamsError


def test_loss_only_on_completion_tokens(work, base_dir, instr_dir):
    trainer, tok, df = build_trainer(sft_params(base_dir, instr_dir, work / "unused"), SEED, str(work / "w1"))
    ds = trainer.train_dataset
    assert "loss_weight" in ds.column_names
    by_prompt = {tuple(tok(prompt_text(tok, p), add_special_tokens=False)["input_ids"]): r
                 for p, r in zip(df.prompt, df.response)}
    checked = 0
    for row in ds.select(range(12)):
        ids, labels = row["input_ids"], row["labels"]
        n = next(len(k) for k in by_prompt if tuple(ids[:len(k)]) == k)  # the prompt's token count
        assert all(x == -100 for x in labels[:n])  # prompt and role markers masked
        assert labels[n:] == ids[n:]  # every completion token learned ...
        end = tok.convert_tokens_to_ids("<|end|>")
        assert end in labels[n:] or len(ids) == 128  # ... including the end-of-turn token (unless truncated)
        assert tok.decode(ids[n:], skip_special_tokens=True).strip().startswith(by_prompt[tuple(ids[:n])][:10].strip())
        checked += 1
    assert checked == 12


def test_source_weights_scale_the_loss(work, base_dir, instr_dir):
    def loss_with(weights):
        p = sft_params(base_dir, instr_dir, work / "unused", source_weights=weights, max_per_source=4)
        trainer, _, df = build_trainer(p, SEED, str(work / "w2"))
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
        trainer.model.eval()
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, dict(batch))), df

    base, df = loss_with({})
    doubled, _ = loss_with({s: 2.0 for s in set(df.source)})
    zero, _ = loss_with({s: 0.0 for s in set(df.source)})
    assert doubled == pytest.approx(2 * base, rel=1e-5) and zero == 0.0 and base > 0


def test_bad_weight_params_fail_at_start(work, base_dir, instr_dir):
    with pytest.raises(ParamsError, match="unknown source"):
        build_trainer(sft_params(base_dir, instr_dir, work / "x", source_weights={"nope": 2.0}), SEED, str(work / "w3"))
    with pytest.raises(ParamsError, match="packing"):
        sft_params(base_dir, instr_dir, work / "x", packing=True, source_weights={"perlfaq": 2.0})


def test_lora_adapter_merges_into_weights_that_load_alone(work, base_dir, instr_dir):
    p = sft_params(base_dir, instr_dir, work / "sft-lora", lora={"enabled": True, "r": 4}, train={"max_steps": 4})
    model, tok, metrics, _ = train_sft(p, SEED, str(work / "w4"))
    save_model(model, tok, p.out_dir)
    files = {f.name for f in (work / "sft-lora").iterdir()}
    assert "adapter_config.json" not in files and "model.safetensors" in files
    alone = load_causal_lm(work / "sft-lora")
    assert not any("lora" in k for k in alone.state_dict())
    x = torch.tensor([tok(prompt_text(tok, "What does `tar` do?"))["input_ids"]])
    base = load_causal_lm(base_dir)
    with torch.no_grad():
        assert torch.allclose(alone(x).logits, model(x).logits, atol=1e-5)
        assert not torch.allclose(alone(x).logits, base(x).logits, atol=1e-4)  # the adapter did something


def test_any_local_model_dir_is_a_base(work, gpt2_dir, instr_dir):
    p = sft_params(gpt2_dir, instr_dir, work / "sft-gpt2", train={"max_steps": 3})
    model, tok, _, _ = train_sft(p, SEED, str(work / "w5"))
    save_model(model, tok, p.out_dir)
    saved = load_tokenizer(p.out_dir)
    assert "<|im_start|>" in saved.chat_template  # the outside model's own template travels on
    assert saved.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(saved)
    assert type(load_causal_lm(p.out_dir)).__name__ == "GPT2LMHeadModel"
    from lmforge.align.reward import load_reward_backbone

    rm, _ = load_reward_backbone(p.out_dir)
    assert rm.config.num_labels == 1 and type(rm).__name__ == "GPT2ForSequenceClassification"


def test_feedback_sft_rows_join_training(work, base_dir, instr_dir):
    fb = work / "feedback-sft"
    fb.mkdir()
    pd.DataFrame({"prompt": ["How do I list files?"], "completion": ["Use `ls`."], "source": ["thumbs_up"]}
                 ).to_parquet(fb / "sft.parquet")
    from lmforge.align.sft import training_frame

    p = sft_params(base_dir, instr_dir, work / "x", feedback_dir=str(fb))
    df = training_frame(p, SEED)
    assert (df.source == "feedback").sum() == 1
