"""Served = offline: one multiple-choice task scored through the running server and through transformers.

Why: the deploy stage's smoke test shows that ``lmforge serve`` answers, not that it answers
as the model does. A server that tokenises differently, pads a batch wrongly or mixes up
positions still answers, fluently. lm-evaluation-harness scores each choice of a
multiple-choice item by its log-likelihood; run offline, its ``hf`` model computes that
with transformers on the release folder, and against the server its ``local-completions``
model asks ``/v1/completions`` for the prompt's token logprobs (``echo``, ``logprobs``,
greedy, token ids in, so both sides score the same tokens). The choice each side picks
must agree on every item; the first item that differs fails the deploy stage, named.

Only the picks and accuracies are compared and reported as metrics: the log-likelihoods
themselves differ in the last bits between a padded server batch and lm-eval's own
batches, so their largest difference is reported beside the timing, not gated.
"""
from __future__ import annotations

from pathlib import Path

from lmforge.evals.harness import flatten, model_args
from lmforge.stage import StageFailure


class ServedMismatch(StageFailure):
    """The served model picked another choice than the offline model on some item."""


def _run(lm, tasks: list[str], tasks_dir: str, limit: int | None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(Path(tasks_dir).resolve()), include_defaults=False)
    return simple_evaluate(model=lm, tasks=list(tasks), task_manager=tm, limit=limit, log_samples=True,
                           bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                           fewshot_random_seed=0)


def offline_run(model_dir: str, tasks: list[str], tasks_dir: str, limit: int | None, batch_size: int) -> dict:
    """lm-eval's ``hf`` model on the folder the server serves."""
    from lm_eval.models.huggingface import HFLM

    return _run(HFLM(batch_size=batch_size, **model_args(model_dir)), tasks, tasks_dir, limit)


def served_run(url: str, model_dir: str, tasks: list[str], tasks_dir: str, limit: int | None, batch_size: int,
               max_input_tokens: int) -> dict:
    """lm-eval's ``local-completions`` model against ``url``, tokenising as the ``hf`` model does."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    adds_specials = tok("a")["input_ids"] != tok("a", add_special_tokens=False)["input_ids"]
    lm = LocalCompletionsAPI(base_url=f"{url}/v1/completions", model=Path(model_dir).name, tokenizer=model_dir,
                             tokenizer_backend="huggingface", batch_size=batch_size, add_bos_token=adds_specials,
                             max_length=max_input_tokens + 1, max_retries=1, timeout=120)
    return _run(lm, tasks, tasks_dir, limit)


def picks(results: dict) -> dict[str, list[tuple[dict, list[float]]]]:
    """Per task, (doc, log-likelihood of each choice) of every item, in item order."""
    out = {}
    for task, samples in results.get("samples", {}).items():
        rows = sorted(samples, key=lambda s: s["doc_id"])
        out[task] = [(s["doc"], [float(r[0]) for r in s["filtered_resps"]]) for s in rows]
    return out


def _argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=xs.__getitem__)


def compare(offline: dict, served: dict) -> tuple[dict, dict]:
    """(metrics, numerics) of two lm-eval runs; raises ServedMismatch at the first differing pick."""
    off, srv = picks(offline), picks(served)
    acc_off, acc_srv = flatten(offline), flatten(served)
    metrics, numerics = {}, {}
    for task in sorted(off):
        if len(off[task]) != len(srv.get(task, [])):
            raise ServedMismatch(f"served = offline: {task} has {len(off[task])} items offline but "
                                 f"{len(srv.get(task, []))} served")
        worst = 0.0
        for (doc, a), (_, b) in zip(off[task], srv[task]):
            if _argmax(a) != _argmax(b):
                name = doc.get("id", "?")
                raise ServedMismatch(
                    f"served = offline FAILED: {task} item {name} ({doc.get('question', '')}): offline picks "
                    f"choice {_argmax(a)} (log-likelihoods {[round(x, 4) for x in a]}), the server picks "
                    f"{_argmax(b)} ({[round(x, 4) for x in b]})")
            worst = max([worst] + [abs(x - y) for x, y in zip(a, b)])
        metrics[task] = {"items": len(off[task]), "acc_offline": acc_off[task]["acc"],
                         "acc_served": acc_srv[task]["acc"], "same_picks": len(off[task])}
        numerics[task] = {"max_abs_loglikelihood_diff": worst}
    return metrics, numerics


def check_served(url: str, model_dir: str, tasks: list[str], tasks_dir: str, limit: int | None, batch_size: int,
                 max_input_tokens: int) -> tuple[dict, dict]:
    """Both runs of ``tasks`` and their comparison; see ``compare``."""
    offline = offline_run(model_dir, tasks, tasks_dir, limit, batch_size)
    served = served_run(url, model_dir, tasks, tasks_dir, limit, batch_size, max_input_tokens)
    return compare(offline, served)
