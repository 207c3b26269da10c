"""Tasks and episodes: label sets, disjoint support and query, N-way restriction, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drml_ray.config import TaskData
from drml_ray.data.conll import Sentence
from drml_ray.data.tags import split_tag
from drml_ray.errors import UserError
from drml_ray.meta.tasks import (
    Task,
    check_episodes,
    keep_types,
    labels_of,
    load_task,
    sample_episode,
    sample_shots,
)
from tests.helpers import top_level_imports

PLAIN_TORCH = ("meta/tasks.py", "meta/learner.py", "meta/results.py", "meta/label_head.py", "metagrad.py")


def toy_task() -> Task:
    sentences = [
        Sentence(("a", "b"), ("B-PER", "O")),
        Sentence(("c", "d"), ("B-LOC", "I-LOC")),
        Sentence(("e",), ("O",)),
        Sentence(("f", "g"), ("B-ORG", "B-PER")),
        Sentence(("h",), ("B-LOC",)),
        Sentence(("i", "j"), ("B-ORG", "O")),
    ]
    return Task("toy", labels_of(["LOC", "ORG", "PER"]), {"train": sentences, "dev": [], "test": []})


def test_labels_of_matches_discover_order():
    assert labels_of(["PER", "LOC"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_keep_types_turns_other_entities_into_o():
    kept = keep_types([Sentence(("f", "g", "h"), ("B-ORG", "B-PER", "I-PER"))], {"PER"})
    assert kept[0].tags == ("O", "B-PER", "I-PER")


@pytest.mark.parametrize("seed", range(5))
def test_episode_support_and_query_are_disjoint_and_deterministic(seed):
    task = toy_task()
    episode = sample_episode(task, shots=3, query=2, rng=random.Random(seed))
    assert len(episode.support) == 3 and len(episode.query) == 2
    assert not set(episode.support_ids) & set(episode.query_ids)
    assert [task.splits["train"][i] for i in episode.support_ids] == episode.support
    assert episode.labels == task.labels
    again = sample_episode(task, shots=3, query=2, rng=random.Random(seed))
    assert (again.support_ids, again.query_ids) == (episode.support_ids, episode.query_ids)


@pytest.mark.parametrize("seed", range(5))
def test_n_way_episode_keeps_n_types_and_only_sentences_with_them(seed):
    episode = sample_episode(toy_task(), shots=1, query=1, rng=random.Random(seed), n_way=1)
    (kind,) = {label[2:] for label in episode.labels if label != "O"}
    assert episode.labels == ["O", f"B-{kind}", f"I-{kind}"]
    for sentence in episode.support + episode.query:
        types = {split_tag(t)[1] for t in sentence.tags} - {None}
        assert types == {kind}  # every eligible sentence holds the type; the other types became O


def test_episode_too_big_for_the_task_names_it():
    with pytest.raises(UserError, match="task toy: an episode needs 5 \\+ 5 sentences but only 6"):
        sample_episode(toy_task(), shots=5, query=5, rng=random.Random(0))


def test_a_task_that_cannot_fill_an_episode_is_refused_before_training():
    # toy_task's sentences hold {PER}, {LOC}, {}, {ORG, PER}, {LOC}, {ORG}: 2 each, so the rarest is LOC by name.
    check_episodes(toy_task(), shots=3, query=3)
    with pytest.raises(UserError, match=r"task toy: .* = 4 \+ 3 sentences, and its train split has 6 sentences;"):
        check_episodes(toy_task(), shots=4, query=3)
    check_episodes(toy_task(), shots=1, query=1, n_way=1)
    with pytest.raises(UserError, match=r"has 2 sentences holding one of its 1 rarest types \(LOC: meta.n_way"):
        check_episodes(toy_task(), shots=2, query=1, n_way=1)
    with pytest.raises(UserError, match=r"has 4 sentences holding one of its 2 rarest types \(LOC, ORG:"):
        check_episodes(toy_task(), shots=3, query=2, n_way=2)


def test_shots_are_a_seeded_sample_and_all_is_everything():
    pool = toy_task().splits["train"]
    assert sample_shots(pool, 3, seed=1) == sample_shots(pool, 3, seed=1)
    assert len(set(map(id, sample_shots(pool, 3, seed=1)))) == 3
    assert sample_shots(pool, "all", seed=1) == pool and sample_shots(pool, 50, seed=1) == pool


def test_generated_tasks_have_their_own_label_sets():
    data = TaskData(generated={"train": 30, "dev": 5, "test": 5, "seed": 1})
    a, b = load_task("generated:PER,ORG", data), load_task("generated:LOC", data)
    assert a.labels == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"] and b.labels == ["O", "B-LOC", "I-LOC"]
    assert a.splits["train"] != b.splits["train"]  # each task draws its own sentences
    with pytest.raises(UserError, match="generated tasks keep some of"):
        load_task("generated:ANIMAL", data)


def test_a_folder_of_split_files_is_a_task_and_its_label_set_is_its_train_files(tmp_path):
    folder = tmp_path / "clinical"
    folder.mkdir()
    (folder / "train.conll").write_text("Anna\tB-PER\nhad\tO\nflu\tB-DISEASE\n")
    (folder / "valid.txt").write_text("Bob\tB-PER\n\nflu\tB-DISEASE\n")  # dev goes by valid.* too
    (folder / "test.conll").write_text("Bob\tB-PER\n")
    task = load_task(str(folder), TaskData())
    assert task.name == str(folder) and task.types == ["DISEASE", "PER"]
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 1, "dev": 2, "test": 1}
    (folder / "dev.conll").write_text("Bob\tB-PER\n")
    with pytest.raises(UserError, match=r"clinical': 2 dev files \(dev.conll, valid.txt\); a task folder holds one"):
        load_task(str(folder), TaskData())


def test_data_columns_pick_the_tag_column_of_a_task_folders_files(tmp_path):
    folder = tmp_path / "germeval"  # a word index, the word, the outer entity, the nested one
    folder.mkdir()
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("1\tAnna\tB-PER\tO\n2\taus\tO\tO\n3\tBerlin-Mitte\tB-LOC\tB-LOCpart\n")
    assert load_task(str(folder), TaskData()).types == ["LOCpart"]
    assert load_task(str(folder), TaskData(columns=[2, 3])).types == ["LOC", "PER"]


def test_algorithm_modules_never_import_ray():
    folder = Path(__file__).resolve().parents[2] / "drml_ray"
    for name in PLAIN_TORCH:
        assert "ray" not in top_level_imports(folder / name), name
