"""A second Ctrl+C while an interrupted command cleans up at exit (Ray's shutdown) exits quietly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import atexit, os, signal, time
    import typer
    from drml_ray.cli_support import user_errors

    def clean_up():  # as ray.shutdown, interrupted again
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)

    atexit.register(clean_up)
    app = typer.Typer()

    @app.command()
    @user_errors
    def run() -> None:
        raise KeyboardInterrupt

    app()
""")


def test_a_second_ctrl_c_during_the_clean_up_at_exit_exits_130_without_a_traceback():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=25)
    assert done.returncode == 130
    assert "drml: interrupted (Ctrl+C or SIGTERM)" in done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
