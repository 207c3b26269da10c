"""A small generated NER corpus (CoNLL types PER, ORG, LOC, MISC) for tests and offline runs.

Sentences are filled from templates with names drawn by a seeded ``random.Random``, so the same
seed always gives the same corpus. It is *generated* data: everything that uses it says so
(``results.json`` has ``"data": {"generated": true}``). It is easy to learn, which is what a
smoke test needs; its scores say nothing about real NER quality.
"""

from __future__ import annotations

import random

from drml_ray.data.conll import Sentence

FIRST = ["Anna", "Peter", "Maria", "John", "Li", "Fatima", "Carlos", "Yuki", "Olga", "Samuel", "Ines", "Tom"]
LAST = ["Schmidt", "Okafor", "Rossi", "Nguyen", "Kowalski", "Smith", "Haddad", "Tanaka", "Silva", "Berg"]
ORG = [
    ["Reuters"],
    ["United", "Nations"],
    ["Siemens"],
    ["European", "Commission"],
    ["Bank", "of", "Japan"],
    ["Red", "Cross"],
    ["Toyota"],
    ["World", "Health", "Organization"],
    ["Ajax"],
    ["Greenpeace"],
]
LOC = [
    ["Berlin"],
    ["Lagos"],
    ["New", "York"],
    ["Brazil"],
    ["Kyoto"],
    ["the", "Alps"],
    ["Cairo"],
    ["Lisbon"],
    ["South", "Africa"],
    ["Oslo"],
]
MISC = [
    ["German"],
    ["Olympic", "Games"],
    ["Nobel", "Prize"],
    ["French"],
    ["World", "Cup"],
    ["Japanese"],
    ["Euro"],
    ["Christmas"],
    ["Brazilian"],
    ["Grand", "Prix"],
]
TEMPLATES = [
    "{PER} joined {ORG} in {LOC} .",
    "{ORG} said on Monday that {PER} would visit {LOC} .",
    "The {MISC} delegation met {PER} in {LOC} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Shares of {ORG} rose after the {MISC} announcement .",
    "{PER} won the {MISC} ahead of {PER} .",
    "Officials in {LOC} expect {ORG} to hire more staff .",
    "{PER} flew from {LOC} to {LOC} on Friday .",
    "It was a quiet week for {ORG} .",
    "Prices fell sharply in the second quarter .",
]


def _fill(slot: str, rng: random.Random) -> list[str]:
    if slot == "PER":
        return [rng.choice(FIRST), rng.choice(LAST)] if rng.random() < 0.7 else [rng.choice(LAST)]
    return list(rng.choice({"ORG": ORG, "LOC": LOC, "MISC": MISC}[slot]))


DOCUMENT_SENTENCES = 4
"""Generated sentences come in documents of this many (so that ``data.context`` has neighbours to add)."""


def generate_sentences(n: int, seed: int) -> list[Sentence]:
    """``n`` IOB2-tagged sentences from the templates, deterministic in ``seed``."""
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        for piece in rng.choice(TEMPLATES).split():
            if piece.startswith("{") and piece.endswith("}"):
                kind = piece[1:-1]
                words = _fill(kind, rng)
                tokens.extend(words)
                tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
            else:
                tokens.append(piece)
                tags.append("O")
        sentences.append(Sentence(tuple(tokens), tuple(tags), i // DOCUMENT_SENTENCES))
    return sentences


def generated_splits(train: int, dev: int, test: int, seed: int) -> dict[str, list[Sentence]]:
    """Train/dev/test splits drawn from independent streams of the same seed."""
    return {
        "train": generate_sentences(train, seed),
        "dev": generate_sentences(dev, seed + 1),
        "test": generate_sentences(test, seed + 2),
    }
