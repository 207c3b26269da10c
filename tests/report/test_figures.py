"""Figures: written atomically, and a label no installed font draws said once, not warned per character."""

from __future__ import annotations

import warnings

from drml_ray.report.build import save_figure, subplots


def test_a_label_no_font_draws_is_one_line_naming_the_figure_not_a_warning_per_character(tmp_path, capsys):
    fig, ax = subplots()
    ax.bar(["PER", "\ue000\ue001"], [0.5, 0.7])  # (private-use characters: no font draws them)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_figure(fig, tmp_path / "types.png")
    assert (tmp_path / "types.png").stat().st_size > 0 and not list(tmp_path.glob(".*"))
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert capsys.readouterr().err.count("[drml] types.png: a label holds characters no installed font draws") == 1
