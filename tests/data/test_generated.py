from drml_ray.data.generated import generate_sentences, generated_splits
from drml_ray.data.tags import iob1_to_iob2


def test_generated_corpus_is_deterministic_and_valid_iob2():
    a, b = generate_sentences(50, seed=3), generate_sentences(50, seed=3)
    assert a == b
    assert a != generate_sentences(50, seed=4)
    for sentence in a:
        assert len(sentence.tokens) == len(sentence.tags)
        assert iob1_to_iob2(sentence.tags) == list(sentence.tags)  # every entity opens with B-
        previous = ("O",) + sentence.tags[:-1]
        assert not any(t.startswith("I-") and p == "O" for p, t in zip(previous, sentence.tags, strict=True))


def test_splits_differ_and_cover_all_types():
    splits = generated_splits(200, 50, 50, seed=1)
    assert [len(v) for v in splits.values()] == [200, 50, 50]
    assert splits["dev"] != splits["train"][:50]
    types = {t[2:] for s in splits["train"] for t in s.tags if t != "O"}
    assert types == {"PER", "ORG", "LOC", "MISC"}
