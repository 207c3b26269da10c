"""Words for what drml prints."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import PurePath


def counted(n: float, noun: str) -> str:
    """``n`` with ``noun``, plural unless ``n`` is 1.

    >>> counted(1, "demonstration"), counted(16, "demonstration"), counted(0.5, "CPU"), counted(2.0, "GPU")
    ('1 demonstration', '16 demonstrations', '0.5 CPUs', '2 GPUs')
    >>> counted(1234567, "prediction")
    '1,234,567 predictions'
    """
    shown = f"{int(n):,}" if float(n).is_integer() else f"{n:g}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


def first_few(names: Sequence[object], n: int = 3) -> str:
    """The first ``n`` of ``names``, joined, and ``...`` where there are more.

    >>> first_few(["a", "b"]), first_few(["a", "b", "c", "d"])
    ('a, b', 'a, b, c, ...')
    """
    return ", ".join(map(str, names[:n])) + (", ..." if len(names) > n else "")


def tails(names: Sequence[str]) -> dict[str, str]:
    """Each name as a table shows it: an absolute path (a task folder, as a config keeps one) by the fewest last
    parts that tell it from the other paths and names; any other name as it is.

    >>> tails(["/d/crossner/ai", "/d/crossner/music", "conll2003"])
    {'/d/crossner/ai': 'ai', '/d/crossner/music': 'music', 'conll2003': 'conll2003'}
    >>> tails(["/a/x/ai", "/b/y/ai", "/c/ai/train", "/ai", "train"])
    {'/a/x/ai': 'x/ai', '/b/y/ai': 'y/ai', '/c/ai/train': 'ai/train', '/ai': '/ai', 'train': 'train'}
    """
    shown = {name: name for name in names}
    paths = {name: PurePath(name).parts[1:] for name in shown if os.path.isabs(name)}
    for name, parts in paths.items():
        others = [o for o in paths.values() if o != parts]
        k = next((k for k in range(1, len(parts)) if "/".join(parts[-k:]) not in shown
                  and all(o[-k:] != parts[-k:] for o in others)), 0)  # fmt: skip
        shown[name] = "/".join(parts[-k:]) if k else name
    return shown


def not_text(text: str) -> str | None:
    """What in ``text`` no tokenizer takes, or ``None``: a NUL, or a lone surrogate, which no UTF-8 holds (Python
    reads a command line's bytes that are not UTF-8 as U+DC80 to U+DCFF; JSON's ``"\\ud800"`` escape is one).

    >>> not_text("Paris"), not_text("a\\x00b")
    (None, 'a NUL character')
    >>> not_text("Pa\\udcffris"), not_text("x \\ud800")
    ('a byte that is not UTF-8 (0xff) at character 3', 'a lone surrogate (U+D800) at character 3')
    """
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        what = (
            f"a byte that is not UTF-8 ({code - 0xDC00:#x})"
            if 0xDC80 <= code <= 0xDCFF
            else f"a lone surrogate (U+{code:04X})"
        )
        return f"{what} at character {err.start + 1}"


_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def shell(path: str | os.PathLike[str]) -> str:
    """``path`` as a command to copy must write it: quoted when a shell would split or expand it.

    >>> shell("runs/smoke"), shell("/tmp/my runs/#1")
    ('runs/smoke', "'/tmp/my runs/#1'")
    """
    return shlex.quote(str(path))


def json_line(record: object) -> str:
    """``record`` as one line of JSON, UTF-8 kept: the line breaks JSON leaves raw in a string (U+0085, U+2028,
    U+2029) escaped too, so that any line splitting (Python's ``str.splitlines``) reads one record a line.

    >>> json_line({"text": "Anna\\u2028Berlin é"})
    '{"text": "Anna\\\\u2028Berlin é"}'
    """
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS)


def not_utf8(err: UnicodeDecodeError, where: str = "") -> str:
    """What a file's bytes that ``err`` found not UTF-8 are (``where``: the place to name), and how to make them
    UTF-8 (``iconv``).

    >>> not_utf8(_decoding("a\\tO\\n".encode("utf-16")))
    'not UTF-8 text but UTF-16 (it starts with its byte-order mark): convert it, iconv -f UTF-16 -t UTF-8'
    >>> print(not_utf8(_decoding("Caf\\xe9\\tB-ORG".encode("latin-1")), " at byte 3"))
    not UTF-8 text: byte 0xe9 at byte 3 is 'é' in Latin-1; if the file is Latin-1, convert it: iconv -f LATIN1 -t UTF-8
    """
    data, at = bytes(err.object), err.start
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not UTF-8 text but UTF-16 (it starts with its byte-order mark): convert it, iconv -f UTF-16 -t UTF-8"
    if b"\x00" in data[:4096]:
        return "not UTF-8 text but binary content (a NUL byte)"
    return (f"not UTF-8 text: byte {data[at]:#04x}{where} is {data[at:at + 1].decode('latin-1')!r} in Latin-1; if the "
            "file is Latin-1, convert it: iconv -f LATIN1 -t UTF-8")  # fmt: skip


def _decoding(data: bytes) -> UnicodeDecodeError:
    """The error decoding ``data`` as UTF-8 raises (doctests)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err
    raise ValueError("valid UTF-8")
