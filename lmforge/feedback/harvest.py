"""Harvest: the feedback store becomes training data again.

The gateway appends requests, feedback and review labels to the store; this
step turns them into three DVC-tracked tables in ``data/feedback/`` that SFT and
DPO read next to the instruction pairs:

* ``sft.parquet`` (prompt, completion, source, …): answers a user gave a thumbs up;
* ``preferences.parquet`` (prompt, chosen, rejected, source, …): pairwise choices
  (source ``pairwise``);
  a thumbs-down paired with a thumbs-up answer to the same prompt (``up_vs_down``);
  a thumbs-down with the user's own correction as the chosen answer (``correction``);
* ``review_labels.parquet`` (id, label, set, ts): the latest keep/drop per
  document, an extra filter list for the data stage.

Only answers that succeeded and passed the safety classifier become data
(``pii`` answers only with ``include_pii``). The logged verdict is not trusted
alone (it may predate a detector, or be missing): every text that would become
training data (prompt, completion) and every text the user wrote on the feedback
(correction, comment) is scanned again with the same detectors
(``lmforge.pii.find_pii``, the gateway's own detector); without ``include_pii`` a hit drops the
row (a comment: the whole feedback), counted as
``<table>:dropped:pii_in_<field>``. The latest rating of a request wins; rows
already in the training data or seen twice are dropped. Each table goes through
Great Expectations (``lmforge.checks.runner.run_checks``) before it is written,
and the three files are swapped in together, so they always exist and are never
half-written — empty tables included. Every step counts what it kept and why it
dropped the rest (``metrics/harvest.json``). With ``data.decontamination`` given (the
stage gives it), thumbs-up answers that carry an evaluation item (lmforge/decontam.py)
leave ``sft.parquet`` for ``decontaminated_sft.parquet``, with their reason; preference
pairs are checked where they meet the others, in the preferences stage.
"""
from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lmforge.config import require
from lmforge.decontam import DecontaminationConfig, drop_contaminated_pairs
from lmforge.io import atomic_dir
from lmforge.feedback.drift import DriftConfig
from lmforge.pii import find_pii
from lmforge.feedback.store import FEEDBACK, REQUESTS, REVIEW_LABELS, scan_jsonl
from lmforge.stage import InputError

SFT_COLUMNS = ["prompt", "completion", "source", "request_id", "model_version"]
PREF_COLUMNS = ["prompt", "chosen", "rejected", "source", "chosen_id", "rejected_id"]
LABEL_COLUMNS = ["id", "label", "set", "ts"]


@dataclass
class HarvestConfig:
    """params.yaml ``harvest`` section."""

    store: str = "data/feedback_store"
    instructions: str = "data/instructions_checked"  # the training pairs to dedup against
    out: str = "data/feedback"
    gx_dir: str = "metrics/gx"
    include_pii: bool = False  # let answers with personal data become training data
    drift: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        require(bool(self.store) and bool(self.out), "harvest.store and harvest.out must be set")


def norm(text: str) -> str:
    """Key for duplicate detection: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def load_training_pairs(folder: str | Path) -> pd.DataFrame:
    """All (prompt, completion) pairs under ``folder`` (parquet/jsonl; response→completion)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: training pairs folder missing (run the instructions "
                                "stage, or set harvest.instructions)")
    parts = []
    for f in sorted(folder.rglob("*")):
        if f.suffix == ".parquet":
            df = pd.read_parquet(f)
        elif f.suffix == ".jsonl":
            df = pd.read_json(f, lines=True)
        else:
            continue
        if "completion" not in df.columns and "response" in df.columns:
            df = df.rename(columns={"response": "completion"})
        if not {"prompt", "completion"} <= set(df.columns):
            raise InputError(f"{f}: expected columns prompt and response/completion, got {list(df.columns)}")
        parts.append(df[["prompt", "completion"]].astype(str))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["prompt", "completion"])


@dataclass
class Store:
    requests: list[dict]
    feedback: list[dict]
    labels: list[dict]
    torn: list[str]

    @classmethod
    def read(cls, root: str | Path) -> "Store":
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: feedback store missing (create it with the gateway "
                                    "or lmforge.feedback.store.init_store)")
        scans = {n: scan_jsonl(root / n) for n in (REQUESTS, FEEDBACK, REVIEW_LABELS)}
        return cls(scans[REQUESTS].records, scans[FEEDBACK].records, scans[REVIEW_LABELS].records,
                   [n for n, s in scans.items() if s.torn_tail])


class Harvest:
    """The harvest steps; ``stats`` counts kept/dropped rows by reason."""

    def __init__(self, cfg: HarvestConfig, store: Store, training: pd.DataFrame):
        self.cfg, self.store = cfg, store
        self.stats: collections.Counter = collections.Counter()
        self.requests = {r["id"]: r for r in store.requests if "id" in r}
        self.training_keys = {(norm(p), norm(c)) for p, c in zip(training["prompt"], training["completion"])}

    def usable(self, rid: str | None, why: str) -> dict | None:
        """The logged request if it can become training data, else None (counted)."""
        r = self.requests.get(rid)
        if r is None:
            self.stats[f"{why}:dropped:unknown_request"] += 1
            return None
        if r.get("status") != 200 or not r.get("completion"):
            self.stats[f"{why}:dropped:failed_request"] += 1
            return None
        verdict = (r.get("safety") or {}).get("verdict", "allow")
        if verdict == "block" or (verdict == "pii" and not self.cfg.include_pii):
            self.stats[f"{why}:dropped:safety_{verdict}"] += 1
            return None
        msgs = r.get("messages") or []
        if sum(1 for m in msgs if m.get("role") == "user") > 1:
            self.stats[f"{why}:dropped:multi_turn"] += 1  # the prompt alone lacks its context
            return None
        if not self.pii_free(why, prompt=r.get("prompt"), completion=r.get("completion")):
            return None
        return r

    def pii_free(self, why: str, **texts: str | None) -> bool:
        """True unless a text holds personal data and ``include_pii`` is off (then counted)."""
        if self.cfg.include_pii:
            return True
        for name, text in texts.items():
            if isinstance(text, str) and find_pii(text):
                self.stats[f"{why}:dropped:pii_in_{name}"] += 1
                return False
        return True

    def feedback_ok(self, f: dict, why: str) -> bool:
        """The user's comment on a feedback holds no personal data (else the feedback is unused)."""
        return self.pii_free(why, comment=f.get("comment"))

    def rated(self, rid: str | None, f: dict, why: str) -> dict | None:
        """The request behind rating ``f`` if both it and the user's words can become data."""
        r = self.usable(rid, why)
        return r if r is not None and self.feedback_ok(f, why) else None

    def latest_ratings(self) -> dict[str, dict]:
        latest: dict[str, dict] = {}
        for f in self.store.feedback:
            if f.get("kind") == "rating":
                latest[f.get("request_id")] = f  # append order: later lines win
        return latest

    def sft(self, ratings: dict[str, dict]) -> pd.DataFrame:
        rows, seen = [], set()
        for rid, f in ratings.items():
            if f.get("rating") != "up" or (r := self.rated(rid, f, "sft")) is None:
                continue
            key = (norm(r["prompt"]), norm(r["completion"]))
            if key in self.training_keys:
                self.stats["sft:dropped:in_training_data"] += 1
            elif key in seen:
                self.stats["sft:dropped:duplicate"] += 1
            else:
                seen.add(key)
                rows.append({"prompt": r["prompt"], "completion": r["completion"],
                             "source": "thumbs_up", "request_id": rid,
                             "model_version": r.get("model_version")})
        self.stats["sft:kept"] += len(rows)
        return pd.DataFrame(rows, columns=SFT_COLUMNS)

    def preferences(self, ratings: dict[str, dict]) -> pd.DataFrame:
        candidates = []
        for f in self.store.feedback:
            if f.get("kind") == "pairwise" and self.feedback_ok(f, "pref"):
                c, r = self.usable(f.get("chosen"), "pref"), self.usable(f.get("rejected"), "pref")
                if c and r:
                    candidates.append((c["prompt"], c["completion"], r["completion"],
                                       "pairwise", c["id"], r["id"]))
        ups: dict[str, list[dict]] = collections.defaultdict(list)
        downs = []
        for rid, f in ratings.items():
            if f.get("rating") == "up" and (r := self.rated(rid, f, "pref_up")):
                ups[norm(r["prompt"])].append(r)
            elif f.get("rating") == "down":
                self.stats["pref:thumbs_down"] += 1
                if (r := self.rated(rid, f, "pref")) is not None:
                    downs.append((r, f))
        for r, f in downs:
            partners = [(u["completion"], "up_vs_down", u["id"]) for u in ups.get(norm(r["prompt"]), [])]
            fix = f.get("correction")
            has_fix = isinstance(fix, str) and bool(fix.strip())
            if has_fix and self.pii_free("pref", correction=fix):
                partners.insert(0, (fix, "correction", None))
            if not partners and not has_fix:
                self.stats["pref:dropped:thumbs_down_without_partner"] += 1
            candidates += [(r["prompt"], chosen, r["completion"], source, cid, r["id"])
                           for chosen, source, cid in partners]
        rows, seen = [], set()
        for prompt, chosen, rejected, source, cid, rid in candidates:
            key = (norm(prompt), norm(chosen), norm(rejected))
            if norm(chosen) == norm(rejected):
                self.stats["pref:dropped:chosen_equals_rejected"] += 1
            elif key in seen:
                self.stats["pref:dropped:duplicate"] += 1
            else:
                seen.add(key)
                rows.append(dict(zip(PREF_COLUMNS, (prompt, chosen, rejected, source, cid, rid))))
        self.stats["pref:kept"] += len(rows)
        return pd.DataFrame(rows, columns=PREF_COLUMNS)

    def review_labels(self) -> pd.DataFrame:
        latest: dict[str, dict] = {}
        for lab in self.store.labels:
            latest[lab.get("doc_id")] = lab
        rows = [{"id": doc_id, "label": lab.get("label"), "set": lab.get("set"), "ts": lab.get("ts")}
                for doc_id, lab in latest.items()]
        self.stats["labels:kept"] += len(rows)
        self.stats["labels:superseded"] += len(self.store.labels) - len(rows)
        df = pd.DataFrame(rows, columns=LABEL_COLUMNS)
        df["ts"] = df["ts"].astype("float64")
        return df


def expectations(kind: str) -> list:
    import great_expectations.expectations as gxe

    def text(cols):
        out = []
        for c in cols:
            out += [gxe.ExpectColumnValuesToNotBeNull(column=c),
                    gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1)]
        return out

    if kind == "sft":
        return [gxe.ExpectTableColumnsToMatchSet(column_set=SFT_COLUMNS, exact_match=True),
                *text(["prompt", "completion", "source"]),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["prompt", "completion"])]
    if kind == "preferences":
        return [gxe.ExpectTableColumnsToMatchSet(column_set=PREF_COLUMNS, exact_match=True),
                *text(["prompt", "chosen", "rejected", "source"]),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["prompt", "chosen", "rejected"])]
    return [gxe.ExpectTableColumnsToMatchSet(column_set=LABEL_COLUMNS, exact_match=True),
            gxe.ExpectColumnValuesToNotBeNull(column="id"),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=["keep", "drop"]),
            gxe.ExpectColumnValuesToBeInSet(column="set", value_set=["curated", "rejected"])]


@dataclass
class HarvestResult:
    tables: dict[str, pd.DataFrame]
    metrics: dict
    train_prompts: list[str]
    live_prompts: list[str]
    new_examples: int  # rows from answers of the latest model version seen in the log


def _new_examples(h: Harvest, tables: dict[str, pd.DataFrame]) -> int:
    """Rows harvested from the model now serving: the count resets with each release."""
    logged = sorted((r.get("ts") or 0, r.get("model_version")) for r in h.requests.values()
                    if r.get("model_version"))
    if not logged:
        return int(len(tables["sft"]) + len(tables["preferences"]))
    current = logged[-1][1]

    def of(rid):
        return (h.requests.get(rid) or {}).get("model_version") == current
    return (sum(of(r) for r in tables["sft"]["request_id"])
            + sum(of(r) for r in tables["preferences"]["rejected_id"]))


def run_harvest(cfg: HarvestConfig, decontam: DecontaminationConfig | None = None) -> HarvestResult:
    """Build, check and write ``data/feedback/``; return tables, metrics and drift inputs."""
    from lmforge.checks.runner import run_checks

    store = Store.read(cfg.store)
    training = load_training_pairs(cfg.instructions)
    h = Harvest(cfg, store, training)
    ratings = h.latest_ratings()
    tables = {"sft": h.sft(ratings), "preferences": h.preferences(ratings),
              "review_labels": h.review_labels()}
    source = {"sft": REQUESTS, "preferences": FEEDBACK, "review_labels": REVIEW_LABELS}
    for name, df in tables.items():
        run_checks(df, f"harvest_{name}", expectations(name), Path(cfg.gx_dir) / f"harvest_{name}.json",
                   files=[str(Path(cfg.store) / source[name]), str(Path(cfg.store) / FEEDBACK)]
                   if name != "review_labels" else str(Path(cfg.store) / REVIEW_LABELS))
    written = dict(tables)
    if decontam is not None:
        tables["sft"], written["decontaminated_sft"], decont = drop_contaminated_pairs(
            tables["sft"], decontam, ["prompt", "completion"])
        written["sft"] = tables["sft"]
    with atomic_dir(cfg.out) as tmp:
        for name, df in written.items():
            df.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
    ratings_up = sum(1 for f in ratings.values() if f.get("rating") == "up")
    metrics = {
        "requests": len(store.requests),
        "requests_ok": sum(1 for r in store.requests if r.get("status") == 200),
        "feedback": len(store.feedback), "ratings_up": ratings_up,
        "ratings_down": len(ratings) - ratings_up,
        "pairwise": sum(1 for f in store.feedback if f.get("kind") == "pairwise"),
        "review_labels": len(store.labels), "torn_tails_skipped": store.torn,
        "rows": {name: int(len(df)) for name, df in tables.items()},
        "steps": dict(sorted(h.stats.items())),
    }
    if decontam is not None:
        metrics["decontamination"] = decont
    live = [r["prompt"] for r in store.requests if isinstance(r.get("prompt"), str) and r["prompt"]]
    return HarvestResult(tables, metrics, training["prompt"].tolist(), live, _new_examples(h, tables))
