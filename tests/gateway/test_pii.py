"""The shared personal-data detector (lmforge.pii): recall on formats from the wild, few false
alarms, every message screened, and nothing fetched from the network while it works."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.gateway.safety import classify
from lmforge.pii import find_pii

DATA = Path(__file__).parent / "data" / "pii_wild.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def test_recall_on_formats_from_the_wild_and_few_false_alarms():
    positives = [r for r in ROWS if r["kinds"]]
    negatives = [r for r in ROWS if not r["kinds"]]
    missed = [r["text"] for r in positives if not set(r["kinds"]) <= set(find_pii(r["text"]))]
    alarms = [r["text"] for r in negatives if find_pii(r["text"])]
    assert len(positives) >= 60 and len(negatives) >= 20
    assert len(missed) <= 0.05 * len(positives), missed
    assert len(alarms) <= 0.05 * len(negatives), alarms


@pytest.mark.parametrize("text, kind", [
    ("call 4155550100", "phone"), ("ring 020 7946 0958", "phone"), ("Tel. 030 901820", "phone"),
    ("me [at] example [dot] org", "email"), ("me at example dot org", "email"),
    ("ip fe80::1ff:fe23:4567:890a", "ip_address"), ("10 Downing St, London SW1A 2AA", "postal_address"),
    ("NHS number 943 476 5919", "national_id"), ("DNI 12345678Z", "national_id"),
])
def test_the_classes_the_old_regexes_missed(text, kind):
    assert kind in find_pii(text)


def test_checksums_still_decide():
    assert "payment_card" in find_pii("card 4111 1111 1111 1111")
    assert "payment_card" not in find_pii("card 4111 1111 1111 1112")  # fails Luhn
    assert "iban" not in find_pii("IBAN DE89 3704 0044 0532 0130 01")  # fails mod 97


def test_every_message_the_model_reads_is_screened():
    bad = "How do I make a pipe bomb at home?"
    assert classify("hello", context=(bad,)).verdict == "block"
    assert classify("hello", context=("my number is 4155550100",)).verdict == "pii"


def test_detection_needs_no_network_and_no_nlp_model():
    code = ("import socket\n"
            "def refuse(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = refuse; socket.create_connection = refuse\n"
            "from lmforge.pii import find_pii\n"
            "assert find_pii('write to a.b@example.co.uk or 4155550100') == ['email', 'phone']\n"
            "import spacy.util, sys\n"
            "assert not [m for m in sys.modules if m.startswith('en_core_web')]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
