"""Download corpora into a local cache, verifying sha256.

Where a file comes from, first match wins: ``source`` (a folder or URL given on the command
line), then ``DRML_DATA_MIRROR`` (the same), then the corpus' public home. Files land in
``DRML_DATA_DIR`` (default ``~/.cache/drml/data``) under the corpus' folder, written to a
temporary name and renamed only once their checksum matches.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from drml_ray.data.registry import CorpusSpec, RemoteFile
from drml_ray.errors import UserError
from drml_ray.runtime.runfiles import with_umask

TIMEOUT_S = 20


class FetchError(UserError):
    """A corpus could not be fetched; the message says from where and what to do."""


def data_dir() -> Path:
    """The cache folder: ``$DRML_DATA_DIR`` or ``~/.cache/drml/data``."""
    return Path(os.environ.get("DRML_DATA_DIR", "~/.cache/drml/data")).expanduser()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_paths(spec: CorpusSpec) -> dict[str, Path] | None:
    """The cached split files of ``spec`` if all are present (checksums were verified on fetch)."""
    folder = data_dir() / spec.folder
    paths = {split: folder / f.name for split, f in spec.files.items()}
    return paths if all(p.is_file() for p in paths.values()) else None


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://", "file://"))


def _sources(spec: CorpusSpec, source: str | None) -> list[str]:
    """Candidate base locations of ``spec``'s files, in the order they are tried."""
    bases = [source.rstrip("/")] if source else []  # --source: the folder holding the files (or a mirror)
    for mirror in (source, os.environ.get("DRML_DATA_MIRROR")):
        if mirror:
            bases.append(mirror.rstrip("/") + "/" + spec.folder if _is_url(mirror) else str(Path(mirror) / spec.folder))
    if spec.base_url:
        bases.append(spec.base_url)
    return bases


def _copy_one(base: str, remote: RemoteFile, dest: Path, progress: bool) -> None:
    """Copy or download ``base/remote.name`` to ``dest`` through a temporary file; check sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if _is_url(base):
                url = f"{base}/{remote.name}"
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=remote.name, disable=not progress) as bar:
                        for block in iter(lambda: response.read(1 << 16), b""):
                            out.write(block)
                            bar.update(len(block))
            else:
                with open(Path(base) / remote.name, "rb") as src:
                    shutil.copyfileobj(src, out)
        actual = sha256_file(tmp)
        if actual != remote.sha256:
            raise FetchError(
                f"{base}/{remote.name}: sha256 {actual} does not match the expected {remote.sha256}; "
                "the file differs from the published corpus"
            )
        with_umask(tmp)  # (mkstemp creates 0600: a shared cache is read by other users' runs)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    spec: CorpusSpec, *, source: str | None = None, force: bool = False, progress: bool = True
) -> dict[str, Path]:
    """Make ``spec``'s split files available locally and return split -> path.

    Raises :class:`FetchError` naming every location tried when none of them delivers all files.
    """
    if not force and (paths := cached_paths(spec)) is not None:
        return paths
    bases = _sources(spec, source)
    if not bases:
        raise FetchError(
            f"{spec.name} cannot be downloaded ({spec.licence}). Pass --source DIR (a folder holding "
            f"{', '.join(f.name for f in spec.files.values())}) or set DRML_DATA_MIRROR to a folder or URL "
            f"with them under {spec.folder}/"
        )
    folder = data_dir() / spec.folder
    try:  # (else every source would be blamed for the cache's refusal)
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise FetchError(f"{folder}: cannot write the corpus cache there ({err.strerror}); set DRML_DATA_DIR to a "
                         "folder you can write") from None  # fmt: skip
    problems = []
    for base in bases:
        try:
            for remote in spec.files.values():
                _copy_one(base, remote, folder / remote.name, progress)
            return {split: folder / f.name for split, f in spec.files.items()}
        except FetchError:
            raise
        except (OSError, urllib.error.URLError) as err:
            problems.append(f"  {base}: {err}")
    raise FetchError(f"could not fetch {spec.name} from any source:\n" + "\n".join(problems) + _mirror_hint(spec))


def _mirror_hint(spec: CorpusSpec) -> str:
    """Where a copy of the corpus goes when none was reachable: ``DRML_DATA_MIRROR``, unset; or what a local one
    holds when it lacks the corpus' folder (one level too deep, a typo)."""
    mirror = os.environ.get("DRML_DATA_MIRROR")
    if not mirror:
        return (f"\nwithout internet, or behind a proxy: copy the files to FOLDER/{spec.folder}/ "
                f"({next(iter(spec.files.values())).name}, ...) and set DRML_DATA_MIRROR=FOLDER, or run drml data "
                f"fetch {spec.name} --source FOLDER/{spec.folder} once")  # fmt: skip
    if _is_url(mirror) or (Path(mirror) / spec.folder).is_dir():
        return ""
    held = sorted(p.name for p in Path(mirror).iterdir()) if Path(mirror).is_dir() else None
    there = f"holds {', '.join(held[:8]) or 'nothing'}" if held is not None else "is no folder"
    return (
        f"\nDRML_DATA_MIRROR={mirror} {there}; a mirror holds each corpus in its folder "
        f"({spec.folder}/{next(iter(spec.files.values())).name}, ...)"
    )
