"""The keys of an experiment's config model, and what an error about one says beyond pydantic's message: the key
a misspelt or foreign name means (``learning_rate``: drml's ``train.lr``), how to write a value YAML read as another
type than the key's (``lr: '1e-5'``: a number in quotes is text). :mod:`drml_ray.config_files` words its errors
with them."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel


def section_of(model: type[BaseModel], key: str) -> tuple[type[BaseModel] | None, bool]:
    """The Section class of field ``key`` if it is a nested section (or a mapping of names to sections: then
    True, the next part of a ``--set`` path being a name), else None."""
    annotation = model.model_fields[key].annotation
    mapping = get_origin(annotation) is dict
    candidates = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None), mapping


def section_at(model: type[BaseModel], path: tuple[str, ...]) -> type[BaseModel] | None:
    """The section class at key path ``path`` of ``model`` (a name in a mapping of sections is skipped), or None."""
    section: type[BaseModel] | None = model
    named = False
    for part in path:
        if named:
            named = False
        elif section is None or part not in section.model_fields:
            return None
        else:
            section, named = section_of(section, part)
    return None if named else section


def known_keys(key: str, section: type[BaseModel], root: type[BaseModel] | None = None) -> str:
    """`` (did you mean 'epochs'? known: ...)`` for an unknown ``key`` of ``section`` (of the config ``root``); for
    a dotted key that names a key inside it (``train.epochs: 3``, written as ``--set`` takes it), how to write it
    nested; for a name of Hugging Face's or RLlib's (``learning_rate``, ``clip_param``), drml's.

    >>> from drml_ray.config import FinetuneConfig
    >>> known_keys("train.epochs", FinetuneConfig)
    ': a dotted key, as --set takes it; in a file, write it nested: train: {epochs: ...}'
    >>> known_keys("learning_rate", FinetuneConfig.model_fields["train"].annotation, FinetuneConfig)
    " (Hugging Face's name; drml's is train.lr)"
    """
    parts = tuple(key.split("."))
    inner = section_at(section, parts[:-1]) if len(parts) > 1 else None
    if inner is not None and parts[-1] in inner.model_fields:
        nested = "".join(f"{part}: {{" for part in parts[:-1]) + f"{parts[-1]}: ..." + "}" * (len(parts) - 1)
        return f": a dotted key, as --set takes it; in a file, write it nested: {nested}"
    if elsewhere := _name_elsewhere(key, root):
        return elsewhere
    known = list(section.model_fields)
    close = difflib.get_close_matches(key.lower(), known, n=1)
    return f" ({f'did you mean {close[0]!r}? ' if close else ''}known: {', '.join(known)})"


HF_NAMES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("train.lr", "ppo.lr"), "num_train_epochs": ("train.epochs",),
    "per_device_train_batch_size": ("train.batch_size",), "per_device_eval_batch_size": ("train.eval_batch_size",),
    "gradient_accumulation_steps": ("train.grad_accum",), "early_stopping_patience": ("train.patience",),
    "fp16": ("train.precision: fp16",), "bf16": ("train.precision: bf16",), "max_seq_length": ("model.max_length",),
    "model_name_or_path": ("model.backbone",), "dataset_name": ("data.corpus",), "train_file": ("data.train",),
    "validation_file": ("data.dev",), "test_file": ("data.test",), "output_dir": ("the command's --output-dir",),
}  # fmt: skip
"""Settings by their names in Hugging Face's ``TrainingArguments`` and ``run_ner.py``, and drml's keys for them
(the first an experiment has is named)."""
RLLIB_NAMES: dict[str, tuple[str, ...]] = {
    "train_batch_size": ("ppo.train_batch",), "train_batch_size_per_learner": ("ppo.train_batch",),
    "minibatch_size": ("ppo.minibatch",), "num_epochs": ("ppo.epochs", "train.epochs"), "clip_param": ("ppo.clip",),
    "vf_clip_param": ("ppo.vf_clip",), "lambda": ("ppo.gae_lambda",), "lambda_": ("ppo.gae_lambda",),
    "fcnet_hiddens": ("ppo.hidden",),
}  # fmt: skip
"""Settings by their names in RLlib's PPO config, and drml's keys for them."""


def _name_elsewhere(key: str, root: type[BaseModel] | None) -> str | None:
    """`` (Hugging Face's name; drml's is train.lr)`` for a ``key`` named so in another tool, where the config
    ``root`` has the setting; else ``None``."""
    for whose, table in (("Hugging Face's", HF_NAMES), ("RLlib's", RLLIB_NAMES)):
        for name in table.get(key, ()) if root is not None else ():
            *up, last = name.split(":")[0].split(".")
            section = section_at(root, tuple(up))
            if name.startswith("the ") or (section is not None and last in section.model_fields):
                return f" ({whose} name; drml's is {name})"
    return None


def got(error: Any) -> str:
    """`` (got 'three')``: the value a pydantic ``error`` refused, where it says more than the message (not for a
    missing or unknown key, nor a whole section)."""
    if error["type"] in ("missing", "extra_forbidden") or isinstance(error.get("input", {}), dict):
        return ""
    return f" (got {error['input']!r}{value_hint(error)})"


NAME_CHARACTERS = "A-Za-z0-9._+-"
"""What a run's name may hold (a regular expression's character class): it names the run's folder."""


def value_hint(error: Any) -> str:
    """How to write a value that YAML read as another type than the key's (``epochs: '3'`` or ``lr: '1e-5'``,
    ``context: 'true'``: text; ``name: 2024``: a number; ``fused_adamw: 1``: a number, not true or false;
    ``target_modules: query``: one name, not a list), or the choice it is close to (``strategy: LoRA``); else
    ``""``.

    >>> value_hint({"type": "float_type", "input": "1e-5"}), value_hint({"type": "int_type", "input": "x"})
    ('; a number in quotes is text: write it without them', '')
    >>> value_hint({"type": "string_type", "input": 2024}), value_hint({"type": "list_type", "input": "query"})
    ("; write it in quotes to make it text: '2024'", '; write a list: [query]')
    >>> value_hint({"type": "string_pattern_mismatch", "input": "my run #2", "loc": ("name",)})[-22:]
    "first, e.g. 'my_run_2'"
    """
    kind, value = error["type"], error.get("input")
    if kind in ("int_type", "float_type") and isinstance(value, str) and _is_number(value):
        return "; a number in quotes is text: write it without them"
    if kind == "bool_type" and isinstance(value, str) and value.lower() in ("true", "false"):
        return f"; {value} in quotes is text: write it without them"
    if kind == "bool_type" and value in (0, 1):
        return f"; write {'true' if value else 'false'}"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"; write it in quotes to make it text: '{value}'"
    if kind == "list_type" and isinstance(value, str | int | float):
        return f"; write a list: [{value}]"
    if kind == "string_pattern_mismatch" and tuple(error.get("loc", ())) == ("name",) and isinstance(value, str):
        fixed = re.sub(f"[^{NAME_CHARACTERS}]+", "_", value).lstrip("._+-")
        return ("; a run's name is its folder's: ASCII letters, digits, '.', '_', '+' and '-', a letter or digit "
                "first" + (f", e.g. {fixed!r}" if fixed else ""))  # fmt: skip
    if kind == "literal_error" and isinstance(value, str):
        options = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(value.lower(), options, n=1)
        return f"; did you mean {close[0]!r}?" if close else ""
    return ""


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
