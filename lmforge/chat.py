"""The chat contract: special tokens, the chat template and where generation stops.

Why its own module on the ground floor: tokenizer training writes this contract into
``tokenizer.json``, post-training renders conversations with it, the release writes its
stop ids into the generation config, and the live server stops on them. Each of those
rooms imports it downward from here, so the live server does not depend on curation
and the contract has one home (docs/CONTRACTS.md describes it).

Documents are separated by ``<|eos|>``; each chat message renders as
``<|role|>\\n{content}<|end|>\\n`` with ``{% generation %}`` around assistant content
(TRL's assistant-only loss), and ``add_generation_prompt`` appends ``<|assistant|>\\n``.
"""
from __future__ import annotations

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = tuple(f"<|{r}|>" for r in ROLES)
END = "<|end|>"
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS, END)

# Jinja, rendered by transformers' apply_chat_template. Whitespace control keeps the
# output exactly `<|role|>\n{content}<|end|>\n` per message.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('chat role must be system, user or assistant, got ' + message['role']) }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def stop_token_ids(tok) -> list[int]:
    """EOS plus the token that closes an assistant turn in this tokenizer's own chat template.

    The one rule for where generation stops, read from the template rather than written
    down again: the server, the release's generation config and post-training's sampling
    all call it, so a model that brings its own template (``<|im_end|>``, say) stops right.
    A tokenizer without a chat template stops at EOS only.
    """
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    if getattr(tok, "chat_template", None):
        marker = "XyZzY"
        text = tok.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
                                       tokenize=False)
        tail = text.split(marker, 1)[1] if marker in text else ""
        first = tok(tail, add_special_tokens=False)["input_ids"][:1] if tail else []
        if first and first[0] in set(tok.all_special_ids) | set(tok.added_tokens_decoder):
            ids.add(first[0])
    if not ids:
        raise ValueError("tokenizer has neither an EOS token nor a special end-of-turn token")
    return sorted(ids)
