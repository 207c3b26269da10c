"""SIGTERM stops a ``drml`` command as Ctrl+C does.

``kill``, ``docker stop``, systemd and ``ray job stop`` send SIGTERM. Without this, Ray's native handler printed a
stack dump ("*** SIGTERM received ***") and the driver exited wherever it was; with it, SIGTERM goes to whatever
handles Ctrl+C at that moment: Ray Train's and Tune's graceful stops during a run (checkpoints recorded, exit 130,
"continues from the last checkpoint"), ``drml serve``'s shutdown, and else Python's ``KeyboardInterrupt``.
``ray.init`` installs Ray's handler, so :func:`~drml_ray.ray_env.ensure_ray` installs this one again after it (and
turns the exit Ray's handler makes of a SIGTERM during ``ray.init``, status 15, into Ctrl+C's).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


def sigterm_as_ctrl_c() -> None:
    """Make SIGTERM call this process's SIGINT handler (on the main thread; elsewhere Python allows no handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # Ctrl+C ignored (a background job of a shell) or left to the OS: SIGTERM must still stop the command
        raise KeyboardInterrupt


def exit_on_next_signal(status: int = 130) -> None:
    """After an interrupted command has said so: a second Ctrl+C or SIGTERM during the clean-up at exit (Ray's
    shutdown sleeps) exits at once with ``status``, where Python printed a ``KeyboardInterrupt`` traceback."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: os._exit(status))
