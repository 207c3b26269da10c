from __future__ import annotations

import numpy as np
import pytest

from drml_ray.ner.features import IGNORE, Window, encode, encode_documents, merge_windows, plan_windows

LABELS = ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG"]
L2I = {label: i for i, label in enumerate(LABELS)}
WORDS = ["EU", "rejects", "Washington-based", "."]
TAGS = ["B-ORG", "O", "B-MISC", "O"]
X = IGNORE


def test_alignment_first_sub_token_carries_the_label(hand_tokenizer):
    # EU -> eu(14); rejects -> re(15) ##jects(16); Washington-based -> wash(9) ##ing ##ton - based; . -> 17
    [window] = encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=64, overlap=4)
    assert window.input_ids == [2, 14, 15, 16, 9, 10, 11, 12, 13, 17, 3]
    assert window.labels == [X, 3, 0, X, 1, X, X, X, X, 0, X]
    assert window.word_starts == [1, 2, 4, 9]
    assert (window.sentence, window.first_word) == (0, 0)


def test_label_all_tokens_turns_b_into_i_after_the_first_piece(hand_tokenizer):
    [window] = encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=64, overlap=4, label_all_tokens=True)
    assert window.labels == [X, 3, 0, 0, 1, 2, 2, 2, 2, 0, X]


def test_unlabelled_text_has_no_loss_positions(hand_tokenizer):
    [window] = encode(hand_tokenizer, [WORDS], None, L2I, max_length=64, overlap=4)
    assert set(window.labels) == {X}


def test_document_context_fills_the_window_with_neighbours_that_carry_no_labels(hand_tokenizer):
    # Budget 14 - 9 pieces of the sentence = room 5: "EU" before, "." after, then each side runs out (the
    # sentence after "." belongs to another document).
    sentences, tags = [["EU"], WORDS, ["."], ["EU"]], [["B-ORG"], TAGS, ["O"], ["B-ORG"]]
    windows = encode(hand_tokenizer, sentences, tags, L2I, max_length=16, overlap=4, documents=[0, 0, 0, 1])
    assert windows[1].input_ids == [2, 14, 14, 15, 16, 9, 10, 11, 12, 13, 17, 17, 3]
    assert windows[1].labels == [X, X, 3, 0, X, 1, X, X, X, X, 0, X, X]
    assert windows[1].word_starts == [2, 3, 5, 10]
    assert windows[3].input_ids == [2, 14, 3]  # alone in its document
    plain = encode(hand_tokenizer, sentences, tags, L2I, max_length=16, overlap=4)
    assert encode(hand_tokenizer, sentences, tags, L2I, max_length=16, overlap=4, documents=[None] * 4) == plain


def test_a_sentence_split_into_windows_gets_no_context(hand_tokenizer):
    split = encode(hand_tokenizer, [["EU"], WORDS], [["B-ORG"], TAGS], L2I, max_length=6, overlap=1, documents=[0, 0])
    alone = encode(hand_tokenizer, [["EU"], WORDS], [["B-ORG"], TAGS], L2I, max_length=6, overlap=1)
    assert split[1:] == alone[1:]
    assert split[0].input_ids == [2, 14, 14, 15, 16, 3]  # "EU" fits whole: room for 3 pieces of context


@pytest.mark.parametrize(
    ("lengths", "budget", "overlap", "expected"),
    [
        ([1, 1, 1], 5, 2, [(0, 3)]),  # fits: one window
        ([1, 1, 1, 1, 1], 3, 1, [(0, 3), (2, 5)]),
        ([2, 2, 2, 2], 4, 1, [(0, 2), (1, 3), (2, 4)]),
        ([1, 1, 1, 1, 1, 1], 4, 2, [(0, 4), (2, 6)]),
        ([1, 5, 1], 3, 1, [(0, 1), (1, 2), (2, 3)]),  # a word longer than the budget stands alone
        ([1, 1, 1, 1], 2, 5, [(0, 2), (1, 3), (2, 4)]),  # overlap >= window: still moves forward
    ],
)
def test_plan_windows_hand_cases(lengths, budget, overlap, expected):
    assert plan_windows(lengths, budget, overlap) == expected


def test_long_sentence_is_split_never_truncated(hand_tokenizer):
    # max_length 6 -> 4 word pieces per window; the 5-piece word keeps its first 4 pieces.
    windows = encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=6, overlap=1)
    assert [(w.first_word, w.n_words) for w in windows] == [(0, 2), (1, 1), (2, 1), (3, 1)]
    assert windows[0].input_ids == [2, 14, 15, 16, 3]
    assert windows[2].input_ids == [2, 9, 10, 11, 12, 3]
    assert windows[2].labels == [X, 1, X, X, X, X]
    assert all(len(w.input_ids) <= 6 for w in windows)
    covered = {w.first_word + j for w in windows for j in range(w.n_words)}
    assert covered == {0, 1, 2, 3}


def test_a_sentence_longer_than_the_model_is_windowed_without_transformers_indexing_warning(hand_tokenizer, caplog):
    """transformers warns "will result in indexing errors" for a sequence over ``model_max_length``; drml cuts
    it into windows, so that warning would only alarm (it was printed for every corpus with such a sentence)."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(vocab=hand_tokenizer.vocab, model_max_length=8)
    words = ["the", "new", "york", "times"] * 5
    with caplog.at_level("WARNING"):
        windows = encode(tokenizer, [words], [["O"] * 20], {"O": 0}, max_length=8, overlap=1)
    assert sum(w.n_words for w in windows) > 20 and all(len(w.input_ids) <= 8 for w in windows)
    assert "indexing errors" not in caplog.text


def test_merge_takes_each_word_from_the_window_where_it_is_most_central():
    # 6 words, windows (0, 4) and (2, 6): word 2 is central in the first, word 3 in the second.
    windows = [Window(0, 0, [], [], [1, 2, 3, 4]), Window(0, 2, [], [], [1, 2, 3, 4])]
    probs = [np.array([[10, 0.1], [11, 0.1], [12, 0.1], [13, 0.1]]), np.array([[20, 0.2], [21, 0.2], [22, 0.2],
                                                                               [23, 0.2]])]  # fmt: skip
    [merged] = merge_windows(windows, probs, [6])
    assert merged[:, 0].tolist() == [10, 11, 12, 21, 22, 23]
    assert merged[:, 1].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.2, 0.2, 0.2])


def test_merge_ties_go_to_the_earlier_window():
    windows = [Window(0, 0, [], [], [1, 2, 3]), Window(0, 2, [], [], [1, 2, 3])]
    merged = merge_windows(windows, [np.array([1, 2, 3]), np.array([7, 8, 9])], [5, 0])
    assert merged[0].tolist() == [1, 2, 3, 8, 9] and merged[1].shape == (0,)  # (a sentence of no words)


def test_document_windows_hold_whole_sentences_of_one_document_every_word_labelled(hand_tokenizer):
    # Pieces: "EU" 1, WORDS 9, "." 1. Budget 12 - 2 = 10: "EU" + WORDS fill one window, "." starts the next;
    # the last "EU" is another document's.
    sentences, tags = [["EU"], WORDS, ["."], ["EU"]], [["B-ORG"], TAGS, ["O"], ["B-ORG"]]
    windows = encode_documents(hand_tokenizer, sentences, tags, L2I, [0, 0, 0, 1], max_length=12, overlap=4)
    assert [w.input_ids for w in windows] == [[2, 14, 14, 15, 16, 9, 10, 11, 12, 13, 17, 3], [2, 17, 3], [2, 14, 3]]
    assert windows[0].labels == [X, 3, 3, 0, X, 1, X, X, X, X, 0, X]
    assert windows[0].word_starts == [1, 2, 3, 5, 10]
    assert [w.sentence for w in windows] == [0, 2, 3]
    # With room for all three, the document is one window; sentences without a document stay alone.
    assert len(encode_documents(hand_tokenizer, sentences, tags, L2I, [0, 0, 0, 1], max_length=16, overlap=4)) == 2
    alone = encode(hand_tokenizer, sentences, tags, L2I, max_length=12, overlap=4)
    assert encode_documents(hand_tokenizer, sentences, tags, L2I, [None] * 4, max_length=12, overlap=4) == alone


def test_a_sentence_longer_than_a_window_is_split_between_document_windows(hand_tokenizer):
    sentences, tags = [["EU"], WORDS, ["."]], [["B-ORG"], TAGS, ["O"]]
    windows = encode_documents(hand_tokenizer, sentences, tags, L2I, [0, 0, 0], max_length=6, overlap=1)
    split = encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=6, overlap=1)
    assert [w.input_ids for w in windows] == [[2, 14, 3], *[w.input_ids for w in split], [2, 17, 3]]
    assert [w.sentence for w in windows[1:-1]] == [1] * len(split)


def test_the_training_set_is_cut_as_data_context_train_says(hand_tokenizer):
    from drml_ray.config import FinetuneConfig
    from drml_ray.ner.train_loop import _train_windows

    train, docs = ([["EU"], WORDS], [["B-ORG"], TAGS]), [0, 0]
    sizes = {"max_length": 64, "overlap": 4}
    cfg = FinetuneConfig.model_validate({"name": "t", "data": {"context": True, "context_train": "document"}})
    assert len(_train_windows(cfg, hand_tokenizer, train, L2I, docs, sizes)) == 1  # one document, one window
    cfg = FinetuneConfig.model_validate({"name": "t", "data": {"context": True}})
    assert len(_train_windows(cfg, hand_tokenizer, train, L2I, docs, sizes)) == 2  # a window per sentence
