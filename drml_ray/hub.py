"""Models named by their Hugging Face Hub id (``ORG/NAME``): read from the Hub cache at once where the Hub cannot
be reached (its host name does not resolve and no proxy is set: the Hub's client would retry each file for ~25 s
before it gives up), downloaded where it can be. Nothing pickled is fetched for a model to run: its config,
safetensors weights and tokenizer files (:data:`MODEL_FILES`)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from drml_ray.errors import UserError, first_line

log = logging.getLogger(__name__)

MODEL_FILES = [
    "config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model",
]  # fmt: skip
"""What ``drml predict`` and ``drml evaluate`` download of a Hub model (no ``pytorch_model.bin``: a pickle)."""


def is_hub_id(text: str) -> bool:
    """``ORG/NAME`` as the Hub spells an id (not a path: no leading ``.``, ``/`` or ``~``, one ``/``).

    >>> is_hub_id("dslim/bert-base-NER"), is_hub_id("runs/quickstart/best"), is_hub_id("./m/x"), is_hub_id("bert")
    (True, False, False, False)
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if text.count("/") != 1 or text.startswith((".", "~")):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def unreachable_host() -> str | None:
    """The Hub's host name where requests to it cannot go out: it does not resolve and no proxy would resolve it
    (``None`` when they can, or when ``HF_HUB_OFFLINE`` already keeps the Hub's client to its cache)."""
    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or ""
    if constants.HF_HUB_OFFLINE or _proxied(endpoint.scheme, host) or _resolves(host):
        return None
    return host


def out_of_reach(repo_id: str) -> bool:
    """Whether ``repo_id`` comes neither from the Hub (``HF_HUB_OFFLINE``, or :func:`unreachable_host`) nor from
    the Hub cache."""
    from huggingface_hub import constants

    return (constants.HF_HUB_OFFLINE or unreachable_host() is not None) and _snapshot(repo_id) is None


def hub_source(repo_id: str, field: str = "model.backbone") -> str:
    """A Hub id as ``from_pretrained`` takes it: the id, or its snapshot in the Hub cache where the Hub cannot be
    reached (:func:`unreachable_host`), or a :class:`UserError` naming ``field`` where the cache lacks it."""
    host = unreachable_host()
    return repo_id if host is None else cached(repo_id, host, f"{field} {repo_id!r}:")


def hub_model(repo_id: str) -> Path:
    """The folder of the Hub model ``repo_id`` (:data:`MODEL_FILES`), downloaded into the Hub cache unless it
    cannot be reached (then read from there), or a :class:`UserError` saying why there is none."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    host = unreachable_host()
    if host is not None:
        folder = Path(cached(repo_id, host, f"{repo_id}: no such model folder or run directory here; as a Hub id,"))
    else:
        log.info("%s: no such folder here; fetching the Hub model (%s, ...)", repo_id, ", ".join(MODEL_FILES[:3]))
        try:
            folder = Path(snapshot_download(repo_id, allow_patterns=MODEL_FILES))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            raise UserError(f"{repo_id}: no such model folder or run directory here, and as a Hub id: "
                            f"{first_line(err)}") from None  # fmt: skip
    if not any(folder.glob("*.safetensors")):
        raise UserError(f"{repo_id}: the Hub model has no safetensors weights; drml does not load a pickle "
                        "(pytorch_model.bin: unpickling runs code): pick a model with model.safetensors, or save "
                        "this one with save_pretrained() (safetensors by default) and name that folder")  # fmt: skip
    return folder


def cached(repo_id: str, host: str, where: str) -> str:
    """The snapshot of ``repo_id`` in the Hub cache, said so, or a :class:`UserError` starting with ``where``."""
    from huggingface_hub import constants

    folder = _snapshot(repo_id)
    if folder is None:
        raise UserError(f"{where} {host} cannot be reached (its name does not resolve: no network?) "
                        f"and the Hub cache ({constants.HF_HUB_CACHE}) does not hold it; download it where there is "
                        f"a network (`hf download {repo_id}`), or name a model folder")  # fmt: skip
    log.info("%s cannot be reached: %s read from the Hub cache (%s)", host, repo_id, folder)
    return folder


def local_folder(source: str) -> str:
    """``source`` where it is a folder, else the snapshot in the Hub cache of the Hub model it names (where
    ``from_pretrained`` has just put or found it), else ``source`` itself."""
    return source if Path(source).is_dir() else _snapshot(source) or source


def _snapshot(repo_id: str) -> str | None:
    """The snapshot of ``repo_id`` in the Hub cache, or ``None`` (not there, or no Hub id at all)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, ValueError):  # (ValueError: HFValidationError, no Hub id)
        return None


def _proxied(scheme: str, host: str) -> bool:
    """Whether a request to ``host`` goes through a proxy (which resolves the name itself): ``https_proxy`` or
    ``all_proxy`` set, ``no_proxy`` not naming the host. (Not any ``*_PROXY`` variable: ``getproxies()`` also holds
    Ray Serve's ``RAY_SERVE_ENABLE_HA_PROXY``, which a local Ray and ``cluster.yaml`` set.)"""
    proxies = getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not proxy_bypass(host)


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):  # (socket.gaierror: no such name, or no DNS to ask)
        return False
    return True
