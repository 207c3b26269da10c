"""A search whose trials failed says why, each trial's own error, not Ray's wrapper around it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from drml_ray.config import TuneSettings
from drml_ray.errors import UserError
from drml_ray.tune.driver import _best_trial

WRAPPED = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=2285, ip=192.0.2.2, repr=trial)\n  File \"x.py\", line 1\n"
           "ray.exceptions.RayTaskError(UserError): ...\ndrml_ray.errors.UserError: model.top_layers=2 but the encoder "
           "has 1 layers")  # fmt: skip


class Grid(list):
    num_terminated = 0

    @property
    def num_errors(self) -> int:
        return len(self)


def results(*errors: Exception) -> Grid:
    return Grid(SimpleNamespace(metrics_dataframe=None, config={"model.backbone": f"/m{i}"}, path=f"/t/trial_0000{i}",
                                error=error) for i, error in enumerate(errors))  # fmt: skip


SETTINGS = TuneSettings.model_validate({"space": {"model.backbone": {"grid": ["/m0", "/m1"]}}, "search": "grid"})


def test_every_trial_failing_on_a_users_setting_is_a_user_error_naming_it(tmp_path, capsys):
    with pytest.raises(UserError, match=r"^every trial failed; trial_00000: model.top_layers=2 but the encoder has 1 "):
        _best_trial(results(RuntimeError(WRAPPED), RuntimeError(WRAPPED)), SETTINGS, 4, "best", tmp_path)
    said = capsys.readouterr().out
    assert "[drml] 2 of 2 trials failed (trials.csv has each one's error); trial_00000 {'model.backbone': '/m0'}: " \
           "UserError: model.top_layers=2 but the encoder has 1 layers;" in said  # fmt: skip
    assert (
        (tmp_path / "trials.csv")
        .read_text()
        .splitlines()[1]
        .endswith(",error,0.0,0.0,UserError: model.top_layers=2 but the encoder has 1 layers")
    )


def test_trials_failing_on_a_bug_stay_a_bug(tmp_path):
    with pytest.raises(RuntimeError, match="no trial reported a checkpoint"):
        _best_trial(results(RuntimeError("KeyError: 'dev_f1'"), RuntimeError(WRAPPED)), SETTINGS, 4, "best", tmp_path)
