"""The README's commands as written: every `drml ...` line of its shell blocks parses (command, arguments,
options; the ones that write run elsewhere in the suite) and every shipped config it names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from drml_ray.cli import app
from drml_ray.config import config_path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """``drml`` command lines of the README's ```bash blocks (env assignments, comments and `&&` split off)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    commands = []
    for line in (line for block in blocks for line in block.replace("\\\n", " ").splitlines()):
        for part in line.split("#")[0].split("&&"):
            words = [w for w in shlex.split(part) if not re.match(r"^[A-Z_]+=", w)]
            if words[:1] == ["drml"]:
                commands.append(words[1:])
            elif words[:2] == ["python", "jobs/run.py"]:
                commands.append(words[2:])
    return commands


def parse(args: list[str]) -> Any:
    """Parse ``drml ARGS`` as click would, down to the command, without running it; returns the command."""
    command = typer.main.get_command(app)
    ctx = command.make_context("drml", list(args))
    while hasattr(command, "resolve_command"):  # a command group
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])  # noqa: SLF001
        ctx = command.make_context(name, rest, parent=ctx)
    return command


def test_every_readme_command_parses_and_names_configs_that_exist():
    commands = readme_commands()
    assert len(commands) >= 30
    for args in commands:
        parse(args)
        for word in args:
            if word.startswith("configs/") and word.endswith(".yaml"):
                assert config_path(word).is_file(), word


def test_a_wrong_command_line_does_not_parse():
    for wrong in (["finetune"], ["finetune", "x.yaml", "--bogus"], ["rl", "nope"], ["tune", "x.yaml", "--init", "a"]):
        with pytest.raises(Exception, match="Missing parameter|No such option|No such command"):
            parse(wrong)
