"""Shared fixtures: one Ray instance per test session, a hand-made tokenizer, tiny models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Ray writes its session files under RAY_TMPDIR; keep them out of /tmp/ray and ~/ray_results.
_RAY_TMP = Path(tempfile.mkdtemp(prefix="drml-ray-tests-"))
os.environ.setdefault("RAY_TMPDIR", str(_RAY_TMP))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DRML_DATA_MIRROR", REPO.parent / "shared" / "data"))

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "new", "york", "times", "wash", "##ing", "##ton", "-", "based", "eu", "re", "##jects", ".", "in",
]  # fmt: skip


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once for every test that needs it (Ray start costs ~8 s)."""
    import ray

    if not ray.is_initialized():
        from drml_ray.ray_env import use_local_ray_settings
        from drml_ray.serve.deploy import use_high_throughput_mode

        use_local_ray_settings()  # as `drml` starts a local Ray
        use_high_throughput_mode()  # Ray Serve as `drml serve` runs it (read when Ray's processes start)
        # The dashboard stays on: without it Ray Train's placement-group cleaner never frees the
        # worker group of a trial Tune stopped, and the next trials wait for CPUs forever.
        ray.init(num_cpus=4, include_dashboard=True, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def hand_tokenizer():
    """A WordPiece tokenizer over VOCAB, so alignment can be checked by hand."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})


@pytest.fixture
def data_mirror() -> Path:
    if not (SHARED_DATA / "crossner").is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (set DRML_DATA_MIRROR)")
    return SHARED_DATA


@pytest.fixture
def umask_027():
    """The process umask 027 for the test (group may read, others nothing), restored after: a file written with
    normal permissions is 0640, not 0600 nor a fixed 0644."""
    import os

    previous = os.umask(0o027)
    yield 0o640
    os.umask(previous)
