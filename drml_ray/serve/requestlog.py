"""``drml serve --log-requests DIR``: served texts and their predictions, kept as Parquet for the next round.

Each file is a drml corpus file (``tokens`` and ``tags``: the words the model saw and the IOB2 tags it
predicted), with the request's ``text``, ``entities`` (JSON), ``model``, ``version`` and ``time`` beside them.
Correct the tags (or keep them as pseudo-labels) and the folder is a corpus: ``drml finetune`` with
``data.train: DIR`` (a folder of Parquet files reads as one corpus), or ``drml continual extend RUN DIR``.

A replica buffers rows and writes a new file (``requests-<start time>-<pid>-<random>-<n>.parquet``, written to a
temporary name and renamed, so a reader never sees half a file) every ``flush_rows`` rows, every
``flush_s`` seconds and when it stops.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from drml_ray.data.parquet import log_row, write_log


class RequestLog:
    """Rows of served predictions, flushed to Parquet files in ``folder``. Thread-safe."""

    def __init__(self, folder: str | Path, flush_rows: int = 1000, flush_s: float = 30.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._files = 0
        self._last_flush = time.monotonic()
        # (random too: a log started again in the same second and process must not write over the first's files)
        self._stem = f"requests-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def add(self, words: list[str], tags: list[str], record: dict, model: str, version: str) -> None:
        """One served text: its words and predicted tags, and the record the client got."""
        row = log_row(words, tags, record, model, version)
        with self._lock:
            self._rows.append(row)
            due = len(self._rows) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_s
        if due:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered rows to a new file; returns it (``None`` when nothing was buffered)."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
            if not rows:
                return None
            self._files += 1
            path = self.folder / f"{self._stem}-{self._files:05d}.parquet"
        write_log(path, rows)
        return path
