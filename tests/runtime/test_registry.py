"""The experiment registry: every kind is complete, and the faces dispatch through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from drml_ray.config import FinetuneConfig, load_config
from drml_ray.meta.config import MetaExperiment
from drml_ray.rl.config import RLExperiment
from drml_ray.runtime.registry import kind_of, kind_of_data, kinds, resolve


def test_every_kind_names_functions_that_exist_with_distinct_commands_and_sections():
    seen_commands, seen_sections = set(), set()
    for kind in kinds():
        assert kind_of(kind.config.model_validate({"name": "x"})) is kind or kind.config is RLExperiment
        for command in kind.commands:
            assert callable(resolve(command.run)) and command.name not in seen_commands
            seen_commands.add(command.name)
        assert callable(resolve(kind.report))
        if kind.tune is not None:
            for ref in (kind.tune.prepare, kind.tune.trial, kind.tune.finish):
                assert callable(resolve(ref)), ref
        assert not seen_sections & set(kind.sections)
        seen_sections |= set(kind.sections)
    assert [k for k in kinds() if not k.sections] == [kind_of_data({})]  # exactly one default kind


def test_a_file_is_the_kind_of_its_sections(tmp_path):
    assert kind_of_data({"env": {"family": "nav2d"}}).config is RLExperiment
    assert kind_of_data({"meta": {}, "model": {}}).config is MetaExperiment
    assert kind_of_data({"train": {}}).config is FinetuneConfig
    path = tmp_path / "x.yaml"
    path.write_text("ppo: {lr: 0.001}\n")
    assert isinstance(load_config(path), RLExperiment)


def test_listing_the_commands_imports_neither_torch_nor_ray():
    code = "import sys, drml_ray.cli; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.parametrize(("given", "dedup"), [(None, "False"), ("1", "True")])
def test_the_cli_turns_rays_log_deduplication_off_unless_the_user_set_it(given, dedup):
    """(Deduplicated, two actors' progress lines print as one, and what Ray held back prints after the final table.)"""
    env = {k: v for k, v in os.environ.items() if k != "RAY_DEDUP_LOGS"} | ({"RAY_DEDUP_LOGS": given} if given else {})
    code = "import drml_ray.cli, ray._private.ray_constants as c; print(c.RAY_DEDUP_LOGS)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert run.stdout == f"{dedup}\n"
