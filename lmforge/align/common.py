"""What SFT, reward modelling, DPO and the gates share: loading local models, the
chat template, generation that stops at the end of an assistant turn, and the TRL
arguments every trainer here gets (no hub, checkpoints only where a stage's
``checkpoints.dir`` asks (``lmforge.align.checkpoints``), progress bars on stderr,
DVCLive through ``lmforge.live`` rather than ``report_to``).

The device is accelerate's choice (a GPU when there is one, else the CPU) for every
model a stage uses - the trained one, the DPO reference, the reward model, the
generating ones (``to_train_device``); bf16 is used only on a GPU that has it in hardware, and ``train.deepspeed`` hands a ZeRO
config to TRL's own DeepSpeed integration (launch with ``torchrun``/``deepspeed``).

The chat template always comes from the model's own tokenizer, so a base model
brought from outside (``sft.base_model``) keeps its own template and role markers,
and the later stages, which load the tokenizer saved in ``models/sft``, use it too.
A tokenizer without a template gets the lmforge template of docs/CONTRACTS.md in
plain text. The end-of-turn token is found by rendering a turn, never hard-coded.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from lmforge.config import ParamsError, require
from lmforge.chat import CHAT_TEMPLATE, stop_token_ids
from lmforge.io import atomic_dir
from lmforge.model import context_length

log = logging.getLogger(__name__)

# docs/CONTRACTS.md: each message renders as <|role|>\n{content}<|end|>\n.
CONTRACT_TEMPLATE = CHAT_TEMPLATE  # the one template, defined with the tokenizer


@dataclasses.dataclass
class AdapterConfig:
    """LoRA through peft; the adapter is merged into full weights before export."""

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = dataclasses.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj"])

    def __post_init__(self):
        require(self.r > 0, f"lora.r must be > 0, got {self.r}")
        require(0.0 <= self.dropout < 1.0, f"lora.dropout must be in [0, 1), got {self.dropout}")

    def peft_config(self, model, task_type: str = "CAUSAL_LM"):
        if not self.enabled:
            return None
        from peft import LoraConfig

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in self.target_modules if t in names]
        if not targets:
            raise ParamsError(f"lora.target_modules {self.target_modules} match no module of "
                              f"{type(model).__name__}")
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=targets, task_type=task_type)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation knobs shared by the three trainers."""

    max_steps: int = 40
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int | None = None  # null = the model's context (config.json), set once by tokenize.seq_len
    threads: int = 1  # torch threads; 2 on a busy 2-core machine is far slower
    deepspeed: str | None = None  # null | "shared" (pretraining's builder) | path to a JSON config
    zero_stage: int = 0  # with deepspeed: shared
    bf16: bool | None = None  # null = on GPUs that support it; never on CPU (slow autocast there)

    def __post_init__(self):
        require(self.max_steps > 0, f"max_steps must be > 0, got {self.max_steps}")
        require(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.max_length is None or self.max_length >= 16, f"max_length must be >= 16, got {self.max_length}")
        require(self.zero_stage in (0, 1, 2, 3), f"zero_stage must be 0-3, got {self.zero_stage}")


def with_context(p, model_dir: str):
    """``p`` (a stage's params) with ``train.max_length`` = the model's context when params leave it null."""
    if p.train.max_length is not None:
        return p
    return dataclasses.replace(p, train=dataclasses.replace(p.train, max_length=context_length(model_dir)))


def use_bf16(requested: bool | None) -> bool:
    """bf16 only on a GPU that supports it; ``None`` asks for it wherever it is."""
    from lmforge.train.dist import native_bf16

    supported = native_bf16()   # hardware bf16 only: emulated bf16 on pre-Ampere GPUs is slower than fp32
    if requested and not supported:
        log.warning("train.bf16: true, but there is no GPU with bf16 here; training in fp32")
    return supported if requested is None else bool(requested) and supported


def deepspeed_config(tp: TrainConfig) -> dict | None:
    """The DeepSpeed config, shared with pretraining.

    ``"shared"`` builds it with pretraining's own builder
    (``lmforge.train.recipe.deepspeed_config``) from this section's batch size,
    gradient accumulation and ``zero_stage``; a path loads that JSON file; ``None``
    trains without DeepSpeed. With DeepSpeed, launch the stage with ``deepspeed`` or
    ``torchrun`` (or set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
    """
    if tp.deepspeed is None:
        return None
    import torch

    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # accelerate 1.15 runs DeepSpeed on a CPU as one process only (it sizes the batch for a
        # world of 1 and stops on the mismatch); several CPU processes train through DDP instead
        raise ParamsError(f"train.deepspeed: {tp.deepspeed!r} with {os.environ['WORLD_SIZE']} CPU processes is "
                          f"not supported by accelerate; set train.deepspeed: null (DDP over gloo) or use GPUs")
    if tp.deepspeed == "shared":
        from lmforge.train.recipe import deepspeed_config as build

        return build(tp.zero_stage, tp.batch_size, tp.grad_accum, int(os.environ.get("WORLD_SIZE", "1")),
                     bf16=use_bf16(tp.bf16))
    p = Path(tp.deepspeed)
    if not p.exists():
        raise ParamsError(f"deepspeed: config file {tp.deepspeed} not found")
    return json.loads(p.read_text())


def trl_kwargs(tp: TrainConfig, seed: int, out_dir: str | None, checkpoints=None) -> dict[str, Any]:
    """Arguments every TRL config here gets (``out_dir`` None: a scratch folder). ``checkpoints``
    (a :class:`lmforge.align.checkpoints.CheckpointConfig`) with a ``dir`` saves there every
    ``every`` steps; otherwise nothing is saved."""
    import tempfile

    import torch

    out_dir = out_dir or tempfile.mkdtemp(prefix="lmforge-align-")
    saving = checkpoints.trainer_kwargs() if checkpoints is not None else {"save_strategy": "no"}
    torch.set_num_threads(max(1, tp.threads))
    # accelerate makes several CPU processes one job (gloo, sharded data) only when told use_cpu;
    # without it each rank of a `torchrun` on a CPU machine trained alone on the same batches.
    # (DeepSpeed on several CPU processes is refused in deepspeed_config: use_cpu would turn it off)
    several_cpus = (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
                    and tp.deepspeed is None)
    return dict(**({"use_cpu": True} if several_cpus else {}),
        **{"output_dir": out_dir, **saving}, report_to="none", seed=seed, data_seed=seed,
        max_steps=tp.max_steps, per_device_train_batch_size=tp.batch_size,
        per_device_eval_batch_size=tp.batch_size, gradient_accumulation_steps=tp.grad_accum,
        learning_rate=tp.lr, warmup_steps=tp.warmup_steps, weight_decay=tp.weight_decay,
        lr_scheduler_type="cosine", logging_steps=max(1, tp.max_steps // 20),
        eval_strategy="no", dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=False, bf16=use_bf16(tp.bf16), fp16=False,
        deepspeed=deepspeed_config(tp),
    )


def live_callbacks(live: str | None) -> list:
    """DVCLive for the trainer when a stage name is given (``metrics/live/<live>``), else none."""
    if live is None:
        return []
    from lmforge.live import trainer_callback

    return [trainer_callback(live)]


def trained_model(trainer, lora: bool):
    """The trainer's model with whole weights: ZeRO-3 partitions gathered, a LoRA adapter merged.

    Under ZeRO-3 every parameter is a partition after training; accelerate's
    ``get_state_dict`` consolidates them (``stage3_gather_16bit_weights_on_model_save``)
    into a plain copy that evaluation and ``save_model`` can use.
    """
    import torch

    model = trainer.model
    if any(hasattr(t, "ds_tensor") for t in model.parameters()):
        if lora:
            raise ParamsError("lora with deepspeed zero_stage 3 is not supported; use zero_stage 0-2")
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
        with torch.random.fork_rng():   # building the copy must not move the seeded stream
            whole = type(model)(model.config)
        whole.load_state_dict(state)
        return whole.to(trainer.args.device).eval()   # evaluated where it trained, not on a CPU copy
    return model.merge_and_unload() if lora else model


def train_device():
    """The device every model of a post-training stage lives on: the trainer's (accelerate's) choice."""
    from lmforge.train.dist import preferred_device

    return preferred_device()


def to_train_device(model):
    """``model`` on :func:`train_device` - unless ZeRO-3 partitions it (DeepSpeed places partitions)."""
    if any(hasattr(t, "ds_tensor") for t in model.parameters()):
        return model
    return model.to(train_device())


def check_devices(device, **models) -> None:
    """Raise naming the first model not on ``device`` (the trainer's): a silent CPU fallback is a bug."""
    import torch

    want = torch.device(device)
    for name, model in models.items():
        if model is None or any(hasattr(t, "ds_tensor") for t in model.parameters()):
            continue   # ZeRO-3 partitions: DeepSpeed placed them
        got = next(model.parameters()).device
        if got.type != want.type or (want.index is not None and got.index not in (None, want.index)):
            raise RuntimeError(f"{name} is on {got}, the trainer on {want}: every model of a stage must "
                               f"be on the trainer's device")


def check_model_dir(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not (p / "config.json").exists():
        from lmforge.align.base_models import make_command

        how = make_command(p)
        raise FileNotFoundError(f"{what}: {p} is not a Hugging Face model folder (no config.json); " + (
            f"make it with `{how}`" if how else "build it first or point params at a local model directory"))
    return p


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if not tok.chat_template:
        log.warning("%s: tokenizer has no chat template; using the lmforge template in plain text", path)
        tok.chat_template = CONTRACT_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | os.PathLike, what: str = "model"):
    import torch
    from transformers import AutoModelForCausalLM

    check_model_dir(path, what)
    return to_train_device(AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32))


def prompt_text(tok, prompt: str) -> str:
    """A one-turn user prompt rendered by the tokenizer's template, ready for the reply."""
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)


def generate(model, tok, prompts: list[str], max_new_tokens: int = 48, sample: bool = False,
             temperature: float = 1.0, top_k: int = 0, seed: int = 0, batch_size: int = 16,
             repetition_penalty: float | None = None, ended: list[bool] | None = None) -> list[str]:
    """Assistant replies to ``prompts`` (left-padded batches, stopped at end of turn).

    ``ended``, when given, gets one flag per reply: True where the model closed its turn
    within ``max_new_tokens``, False where the budget cut it (preference pairs need it).

    ``repetition_penalty`` goes through transformers' own ``RepetitionPenaltyLogitsProcessor``
    with ``prompt_ignore_length`` = the padded prompt: only the reply's own tokens are
    penalised, never the prompt, whose chat template holds the end-of-turn token (penalising
    it would suppress the end token, which is forcing). A model folder's own default penalty
    (a release's generation_config.json) is switched off here, so it never applies twice."""
    import torch
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    torch.manual_seed(seed)
    stops = stop_token_ids(tok)
    side, tok.padding_side = tok.padding_side, "left"
    out: list[str] = []
    model.eval()
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [prompt_text(tok, p) for p in prompts[i:i + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            procs = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(
                repetition_penalty, prompt_ignore_length=enc["input_ids"].shape[1])] if repetition_penalty else [])
            with torch.no_grad():
                gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                     max_new_tokens=max_new_tokens, do_sample=sample,
                                     temperature=temperature if sample else None, top_k=top_k if sample else None,
                                     top_p=None, eos_token_id=stops, pad_token_id=tok.pad_token_id,
                                     repetition_penalty=1.0, logits_processor=procs)
            for row in gen[:, enc["input_ids"].shape[1]:]:
                out.append(tok.decode(row, skip_special_tokens=True).strip())
                if ended is not None:
                    ended.append(any(int(t) in stops for t in row))
    finally:
        tok.padding_side = side
    return out


def save_model(model, tok, out_dir: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write a standalone HF folder (weights, config, tokenizer) atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = stop_token_ids(tok)
            model.generation_config.pad_token_id = tok.pad_token_id
            model.generation_config.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
