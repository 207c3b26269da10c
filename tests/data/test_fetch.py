from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from drml_ray.data.conll import read_conll
from drml_ray.data.fetch import FetchError, cached_paths, fetch
from drml_ray.data.registry import CONLL2003, CORPORA, CorpusSpec, RemoteFile

FILES = {"train.txt": b"EU\tB-ORG\nsaid\tO\n\n", "dev.txt": b"Bob\tB-PER\n\n", "test.txt": b"Paris\tB-LOC\n\n"}


def make_spec(base_url: str | None, files=FILES) -> CorpusSpec:
    return CorpusSpec(
        name="toy",
        folder="toy/domain",
        files={n.split(".")[0]: RemoteFile(n, hashlib.sha256(b).hexdigest()) for n, b in files.items()},
        scheme="iob2",
        licence="test",
        base_url=base_url,
        description="toy corpus",
    )


@pytest.fixture
def served(tmp_path):
    """A local HTTP server publishing FILES under /public/ and /mirror/toy/domain/."""
    root = tmp_path / "www"
    for folder in (root / "public", root / "mirror" / "toy" / "domain"):
        folder.mkdir(parents=True)
        for name, data in FILES.items():
            (folder / name).write_bytes(data)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRML_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DRML_DATA_MIRROR", raising=False)


def test_fetch_from_public_home_verifies_and_caches(served, tmp_path):
    spec = make_spec(f"{served}/public")
    paths = fetch(spec, progress=False)
    assert paths["train"] == tmp_path / "cache" / "toy" / "domain" / "train.txt"
    assert read_conll(paths["dev"])[0].tokens == ("Bob",)
    assert cached_paths(spec) == paths
    # A second fetch is served from the cache even with the server gone.
    assert fetch(make_spec("http://127.0.0.1:9/nowhere"), progress=False) == paths


def test_mirror_url_beats_public_home(served, monkeypatch):
    monkeypatch.setenv("DRML_DATA_MIRROR", f"{served}/mirror")
    paths = fetch(make_spec("http://127.0.0.1:9/unreachable"), progress=False)
    assert paths["test"].read_bytes() == FILES["test.txt"]


def test_mirror_folder(tmp_path, monkeypatch):
    folder = tmp_path / "mirror" / "toy" / "domain"
    folder.mkdir(parents=True)
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("DRML_DATA_MIRROR", str(tmp_path / "mirror"))
    assert fetch(make_spec(None), progress=False)["train"].read_bytes() == FILES["train.txt"]


def test_a_fetched_file_is_readable_as_the_umask_says(tmp_path, monkeypatch, umask_027):
    (tmp_path / "mirror" / "toy" / "domain").mkdir(parents=True)
    for name, data in FILES.items():
        (tmp_path / "mirror" / "toy" / "domain" / name).write_bytes(data)
    monkeypatch.setenv("DRML_DATA_MIRROR", str(tmp_path / "mirror"))
    paths = fetch(make_spec(None), progress=False)  # (through mkstemp: 0600 before)
    assert {path.stat().st_mode & 0o777 for path in paths.values()} == {umask_027}


def test_a_mirror_without_the_corpus_folder_says_what_it_holds(tmp_path, monkeypatch):
    (tmp_path / "mirror" / "toy" / "domain").mkdir(parents=True)  # given one level too deep: mirror/toy
    monkeypatch.setenv("DRML_DATA_MIRROR", str(tmp_path / "mirror" / "toy"))
    with pytest.raises(FetchError, match=r"\nDRML_DATA_MIRROR=\S+/mirror/toy holds domain; a mirror holds each corpus "
                       r"in its folder \(toy/domain/train.txt, ...\)$"):  # fmt: skip
        fetch(make_spec(None), progress=False)


def test_a_cache_that_cannot_be_written_is_named_rather_than_the_sources(served, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DRML_DATA_DIR", str(tmp_path / "file"))
    with pytest.raises(FetchError, match=r"file/toy/domain: cannot write the corpus cache there \(.*\); set DRML_DA"):
        fetch(make_spec(f"{served}/public"), progress=False)


def test_checksum_mismatch_is_an_error_and_leaves_no_file(served, tmp_path):
    spec = make_spec(f"{served}/public", files=FILES | {"dev.txt": b"tampered\tO\n"})
    with pytest.raises(FetchError, match="sha256"):
        fetch(spec, progress=False)
    assert not (tmp_path / "cache" / "toy" / "domain" / "dev.txt").exists()
    assert not list((tmp_path / "cache" / "toy" / "domain").glob("*.part"))


def test_unreachable_sources_are_all_named():
    with pytest.raises(FetchError) as err:
        fetch(make_spec("http://127.0.0.1:9/public"), source="http://127.0.0.1:9/mirror", progress=False)
    assert "127.0.0.1:9/mirror/toy/domain" in str(err.value)
    assert "127.0.0.1:9/public" in str(err.value)


def test_with_no_source_reachable_and_no_mirror_set_it_says_where_a_copy_goes(monkeypatch):
    monkeypatch.delenv("DRML_DATA_MIRROR", raising=False)
    with pytest.raises(FetchError, match=r"\nwithout internet, or behind a proxy: copy the files to FOLDER/toy/domain/ "
                       r"\(train.txt, ...\) and set DRML_DATA_MIRROR=FOLDER, or run drml data fetch toy --source "
                       r"FOLDER/toy/domain once$"):  # fmt: skip
        fetch(make_spec("http://127.0.0.1:9/public"), progress=False)


def test_conll2003_needs_a_user_supplied_folder():
    with pytest.raises(FetchError, match="cannot be downloaded.*--source DIR"):
        fetch(CONLL2003, progress=False)


def test_registry_covers_conll_and_five_crossner_domains():
    assert set(CORPORA) == {"conll2003"} | {
        f"crossner_{d}" for d in ("politics", "science", "music", "literature", "ai")
    }


@pytest.mark.shared_data
def test_shared_mirror_matches_registered_checksums(data_mirror, monkeypatch):
    monkeypatch.setenv("DRML_DATA_MIRROR", str(data_mirror))
    paths = fetch(CORPORA["crossner_politics"], progress=False)
    assert len(read_conll(paths["train"])) == 200
    conll = fetch(CONLL2003, progress=False)
    assert len(read_conll(conll["test"], scheme="iob1")) == 3453


@pytest.mark.shared_data
def test_fetch_source_may_be_the_folder_holding_the_files(tmp_path, monkeypatch):
    """The README's `drml data fetch conll2003 --source ~/data/conll`: the files themselves, no conll2003/ inside."""
    from tests.conftest import SHARED_DATA as SHARED

    if not (SHARED / "conll2003").is_dir():
        pytest.skip(f"no CoNLL-2003 copy at {SHARED} (set DRML_DATA_MIRROR)")
    monkeypatch.setenv("DRML_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DRML_DATA_MIRROR", raising=False)
    paths = fetch(CONLL2003, source=str(SHARED / "conll2003"), progress=False)
    assert sorted(p.name for p in paths.values()) == ["eng.testa", "eng.testb", "eng.train"]
