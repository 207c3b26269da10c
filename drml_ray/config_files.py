"""Experiment files: YAML with line numbers -> overrides -> a validated config (:mod:`drml_ray.config` holds
the models). Unknown keys and wrong types are errors that name the file, the line and the key::

    configs/ner/smoke.yaml:14: train.epochs: Input should be a valid integer (got 'three')

with what :mod:`drml_ray.config_hints` adds (the key a misspelt or foreign name means, how to write a value).

A config argument is a path, or the name of a config shipped inside the package (``ner/smoke``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from drml_ray.config_hints import got, known_keys, section_at, section_of
from drml_ray.config_paths import CONFIG_FOLDER, path_problems
from drml_ray.errors import UserError
from drml_ray.text import not_text, not_utf8


class ConfigError(UserError):
    """An invalid experiment file or override; the message lists every problem found."""


# --- YAML with line numbers ----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.1 wants ``1.0e-5``) and refuses a key given twice
    in one mapping (plain YAML keeps the last one silently). Merge keys (``<<: *anchor``) work as in YAML 1.1: a
    key written next to them overrides the merged one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)
# Resolvers are tried in the order they were added, so integers still resolve as integers.


def parse_yaml_value(text: str) -> Any:
    """Parse one override value as YAML (``3`` -> int, ``1e-5`` -> float, ``[a, b]`` -> list)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _override_value(key: str, value: str) -> Any:
    """``value`` of ``--set key=value`` parsed as YAML, or a :class:`ConfigError` saying what is wrong with it."""
    if (bad := not_text(value)) is not None:  # (a terminal's bytes that are not UTF-8: no config file holds them)
        raise ConfigError(f"--set {key}: {bad}; the config is UTF-8 text: give the value in UTF-8")
    try:
        return parse_yaml_value(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or err
        raise ConfigError(f"--set {key}: {value!r} is not a YAML value ({problem}); a string holding YAML's "
                          f"characters goes in quotes: --set '{key}=\"...\"'") from None  # fmt: skip


def _key_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map every key path of a YAML mapping tree to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (str(key_node.value),)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path))
    return lines


def _steps(path: tuple[str, ...], model: type[BaseModel]) -> tuple[str, ...]:
    """``path`` with a name in a mapping of sections joined again where its names are free strings:
    ``tune.space.train.lr`` is the space's ``train.lr`` (its names are config keys). Such a name ends where a key
    of its section follows (``tune.space.train.lr.loguniform``), else it is the rest of the path."""
    steps: list[str] = []
    section: type[BaseModel] | None = model
    rest = list(path)
    while rest and section is not None and rest[0] in section.model_fields:
        steps.append(rest.pop(0))
        annotation = section.model_fields[steps[-1]].annotation
        section, named = section_of(section, steps[-1])
        if named and rest and get_args(annotation)[0] is str:
            end = next((k for k in range(1, len(rest)) if section and rest[k] in section.model_fields), len(rest))
            steps.append(".".join(rest[:end]))
            rest = rest[end:]
    return (*steps, *rest)


def apply_override(data: dict[str, Any], override: str, model: type[BaseModel]) -> tuple[str, ...]:
    """Apply ``a.b=value`` to ``data`` in place after checking that ``a.b`` is a key of ``model`` (a mapping of
    sections takes any name: ``irl.families.nav2d.iters=5``)."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    path = _steps(tuple(key.strip().split(".")), model)
    section: type[BaseModel] | None = model
    node, named = data, False
    for depth, part in enumerate(path):
        if not named and (section is None or part not in section.model_fields):
            where = ".".join(path[:depth]) or "the top level"
            known = known_keys(part, section, model) if section else " (not a section)"
            raise ConfigError(f"--set {key}: unknown key {part!r} in {where}{known}")
        if depth == len(path) - 1:
            new, old = _override_value(key, value), node.get(part)
            is_section = isinstance(new, dict) and isinstance(old, dict) and section_at(model, path) is not None
            node[part] = _merged(old, new) if is_section else new
        else:
            if named:
                named = False
            else:
                section, named = section_of(section, part)  # type: ignore[arg-type]
            child = node.get(part)
            node = node.setdefault(part, {}) if child is None else child
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(path[: depth + 1])} is not a section")
    return path


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the keys of ``new`` set (nested mappings merged alike): ``--set 'train={epochs: 1}'`` changes
    train.epochs and keeps the file's other train keys.

    >>> _merged({"lr": 0.1, "lora": {"r": 4, "alpha": 8}}, {"epochs": 1, "lora": {"r": 8}})
    {'lr': 0.1, 'lora': {'r': 8, 'alpha': 8}, 'epochs': 1}
    """
    out = dict(old)
    for key, value in new.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _where(loc: tuple[str, ...], msg: str, source: str, lines: dict[tuple[str, ...], int], overridden: set) -> str:
    """Where the error at ``loc`` comes from: ``--set``, or the file's line, with the ``--set`` keys a section's own
    check (or a check across sections, by the keys its message names) took in."""
    if _set_whole(loc, overridden):
        return "--set"
    line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
    if not loc:  # a check across sections: the line of the first key its message names (not a section above it)
        named = [path for path in lines if len(path) > 1 and ".".join(path) in msg]
        first = next((p for p in named if not any(o[: len(p)] == p != o for o in named)), ())
        if _set_whole(first, overridden):
            return "--set"
        line = lines.get(first)
    inside = sorted(".".join(o) for o in overridden if o[: len(loc)] == loc and (loc or ".".join(o) in msg))
    return (f"{source}:{line}" if line else source) + (f" with --set {', '.join(inside)}" if inside else "")


def _set_whole(loc: tuple[str, ...], overridden: set) -> bool:
    """Whether ``--set`` gave the key at ``loc`` its value: the key itself, or a section or mapping above it."""
    return any(loc[:i] in overridden for i in range(1, len(loc) + 1))


def _key_named(loc: tuple[str, ...], message: str) -> tuple[tuple[str, ...], str]:
    """A section's check whose message opens with one of its keys (``data.corpus: ...``): that key's location and
    the rest of the message, so the error names the key's line, once; else both as they are.

    >>> _key_named(("data",), "data.corpus: unknown corpus 'x'")
    (('data', 'corpus'), "unknown corpus 'x'")
    """
    head, sep, rest = message.partition(": ")
    path = tuple(head.split("."))
    if loc and sep and len(path) > len(loc) and path[: len(loc)] == loc and all(map(str.isidentifier, path)):
        return path, rest
    return loc, message


def _format_errors(
    err: ValidationError, model: type[BaseModel], source: str, lines: dict[tuple[str, ...], int], overridden: set
) -> str:
    messages = []
    for e in err.errors():
        loc, message = _key_named(tuple(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
        where = _where(loc, message, source, lines, overridden)
        if e["type"] == "extra_forbidden":
            section = section_at(model, loc[:-1])
            message = "unknown key" + (known_keys(loc[-1], section, model) if section else "")
        messages.append(f"{where}: {'.'.join(loc) + ': ' if loc else ''}{message}{got(e)}")
    more = [f"... and {len(messages) - SHOWN_ERRORS} more"] if len(messages) > SHOWN_ERRORS + 1 else []
    return "\n".join(messages[: SHOWN_ERRORS if more else None] + more)


SHOWN_ERRORS = 10
"""The mistakes of one file listed; the rest are counted (a file that is no experiment file has one per key)."""


def load_config(path: str | Path, overrides: list[str] | None = None, model: type[BaseModel] | None = None,
                check_files: bool = False) -> Any:  # fmt: skip
    """Read, override and validate an experiment file. Raises :class:`ConfigError` naming file, line and key.

    ``path`` may name a shipped config (:func:`config_path`). ``model`` defaults to the file's experiment
    kind (:func:`drml_ray.runtime.registry.kind_of_data`: an ``env:`` section makes an RL file, ...). With
    ``check_files`` (a command about to run it), every file or folder the config names must be there.
    """
    from drml_ray.runtime.registry import kind_of_data

    path = config_path(path)
    data, lines = _read_yaml(path)
    model = model or kind_of_data(data).config
    overridden = {apply_override(data, item, model) for item in overrides or []}
    data.setdefault("name", path.stem)
    folder = CONFIG_FOLDER.set(path.parent)
    try:
        config = model.model_validate(data)
    except ValidationError as err:
        hint = _other_kind(path, data, model)
        raise ConfigError(hint + _format_errors(err, model, str(path), lines, overridden)) from None
    finally:
        CONFIG_FOLDER.reset(folder)
    if getattr(config, "tune", None) is not None:
        config = _check_space(config, path, lines, overridden, check_files)
    if check_files:
        _check_local_paths(config, path, lines, overridden)
    return config


@contextmanager
def at_its_line(path: str | Path, overrides: Sequence[str], model: type[BaseModel]) -> Iterator[None]:
    """A :class:`UserError` found while a command runs the config at ``path``, whose message opens with one of its
    keys (``model.max_length 600: the backbone has 512 positions``), gets the config's line of that key before it,
    as :func:`load_config`'s errors have (``exp.yaml:9: model.max_length 600: ...``, or ``--set: ...``)."""
    try:
        yield
    except UserError as err:
        loc = _key_opening(str(err), model)
        if type(err) is not UserError or loc is None:
            raise
        path = config_path(path)
        data, lines = _read_yaml(path)
        overridden = {apply_override(data, item, model) for item in overrides}
        raise UserError(f"{_where(loc, '', str(path), lines, overridden)}: {err}") from None


def _key_opening(message: str, model: type[BaseModel]) -> tuple[str, ...] | None:
    """The key of ``model`` that ``message`` opens with, or ``None``.

    >>> from drml_ray.config import FinetuneConfig
    >>> [_key_opening(m, FinetuneConfig) for m in ("model.backbone 'x': ...", "exp.yaml: ...", "model.nope: ...")]
    [('model', 'backbone'), None, None]
    """
    head = re.match(r"[a-z_]+(?:\.[a-z_0-9]+)+", message)
    loc = tuple(head.group().split(".")) if head else ()
    section = section_at(model, loc[:-1]) if len(loc) > 1 else None
    return loc if section is not None and loc[-1] in section.model_fields else None


def _check_local_paths(config: BaseModel, path: Path, lines: dict[tuple[str, ...], int], overridden: set) -> None:
    """Each file or folder a section names (a :data:`~drml_ray.config.LocalPath`: ``data.train``,
    ``irl.experts_dir``, ...) that is not there, and each model folder or backbone that holds no model, is a
    :class:`ConfigError` at its line."""
    for key, problem in path_problems(config, path.parent):
        where = _where(tuple(key.split(".")), "", str(path), lines, overridden)
        raise ConfigError(f"{where}: {key}: {problem}")


def _other_kind(path: Path, data: dict[str, Any], model: type[BaseModel]) -> str:
    """The line that says a file failing ``model`` is an experiment of another kind, and which commands run it;
    ``""`` when the file is of ``model``'s kind."""
    from drml_ray.runtime.registry import kind_of_data, kinds

    kind = kind_of_data(data)
    if kind.config is model:
        return ""
    own = [s for s in kind.sections if s in data]
    asked = next((k for k in kinds() if k.config is model), None)
    missing = asked.sections if asked is not None and not own else ()
    why = f"it has {', '.join(s + ':' for s in own)}" if own else f"it has no {' or '.join(s + ':' for s in missing)}"
    commands = ", ".join(f"drml {c.name}" for c in kind.commands)
    return f"{path}: an experiment of {commands} ({why}), not of this command\n"


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The mapping of a YAML file, and the line of every key path in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        guess = shipped_like(path) if isinstance(err, FileNotFoundError | IsADirectoryError) else ""
        if (path / "config.yaml").is_file():  # (a run directory: its config)
            guess = f"the config of the run there is {path / 'config.yaml'}; "
        elif (path / "config.json").is_file():
            guess = "a model folder: an experiment's model.backbone, or the MODEL_DIR of drml evaluate and predict; "
        raise ConfigError(f"{path}: cannot read config ({err.strerror}; {guess}`drml configs list` shows the "
                          "shipped ones)") from None  # fmt: skip
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: {not_utf8(err, f' at byte {err.start}')}") from None
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where, problem = (f"{path}:{mark.line + 1}", getattr(err, "problem", err)) if mark else (str(path), err)
        tab = "; YAML indents with spaces, not tabs" if "'\\t'" in str(problem) else ""
        raise ConfigError(f"{where}: invalid YAML: {problem}{tab}") from None
    if data is None:
        raise ConfigError(f"{path}:1: empty file; an experiment names its sections (drml configs show ner/smoke)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the file must hold a mapping of config keys, not {type(data).__name__}")
    if "model_type" in data or "architectures" in data:
        raise ConfigError(f"{path}: a Hugging Face model's config (model_type {data.get('model_type')!r}), not an "
                          "experiment file: its folder is an experiment's model.backbone, or the MODEL_DIR of drml "
                          "evaluate, predict and serve")  # fmt: skip
    return data, _key_lines(root) if root is not None else {}


def _check_space(
    config: Any, path: Path, lines: dict[tuple[str, ...], int], overridden: set, check_files: bool = False
) -> Any:
    """Every value a trial of ``tune.space`` (or a PBT mutation) could take must make a valid config (with
    ``check_files``, name files that are there); ``config`` with each value as the config holds it (a relative path
    made absolute here: a trial runs in its own folder)."""
    tune = config.tune
    resolved: dict[str, dict[str, Any]] = {"space": {}, "mutations": {}}
    for section, space in (("space", tune.space), ("mutations", tune.scheduler.mutations)):
        for key, dist in space.items():
            where = ("tune", "space", key) if section == "space" else ("tune", "scheduler", "mutations", key)
            try:
                _searchable(type(config), key)
                values = [_value_at(_trial(config, key, value, path, check_files), key) for value in dist.args]
            except ConfigError as err:
                origin = _where(where, "", str(path), lines, overridden)
                raise ConfigError(f"{origin}: tune.{section}.{key}: {err}") from None
            held = {kind: values for kind in ("choice", "grid") if getattr(dist, kind) is not None}
            resolved[section][key] = dist.model_copy(update=held)
    scheduler = tune.scheduler.model_copy(update={"mutations": resolved["mutations"]})
    return config.model_copy(
        update={"tune": tune.model_copy(update={"space": resolved["space"], "scheduler": scheduler})}
    )


def _trial(config: BaseModel, key: str, value: Any, path: Path, check_files: bool) -> BaseModel:
    """``config`` with the searched ``key`` at ``value``; with ``check_files``, a path there must name something
    (a model, for a model folder or a backbone)."""
    trial = with_params(config, {key: value})
    problems = dict(path_problems(trial, path.parent)) if check_files else {}
    if key in problems:
        raise ConfigError(problems[key])
    return trial


def _value_at(config: BaseModel, key: str) -> Any:
    """The value at dotted ``key`` of ``config``, as its YAML holds it."""
    value: Any = config.model_dump(mode="json")
    for part in key.split("."):
        value = value[part]
    return value


def _searchable(model: type[BaseModel], key: str) -> None:
    """Refuse a searched key whose values would not be one setting: the search's own, or a whole section."""
    if key.split(".")[0] == "tune":
        raise ConfigError("the search's own settings are not searched")
    section = section_at(model, tuple(key.split(".")))
    if section is not None:
        keys = ", ".join(f"{key}.{name}" for name in list(section.model_fields)[:3])
        raise ConfigError(f"a section: each value would replace all of it (its other keys back to their defaults); "
                          f"search its keys ({keys}, ...)")  # fmt: skip


def shipped_configs() -> list[str]:
    """The configs shipped inside the package, by name: ``ner/smoke``, ``tune/smoke``, ..."""
    root = resources.files("drml_ray") / "configs"
    return sorted(f"{group.name}/{f.name.removesuffix('.yaml')}" for group in root.iterdir() if group.is_dir()
                  for f in group.iterdir() if f.name.endswith(".yaml"))  # fmt: skip


def shipped_like(name: str | Path) -> str:
    """``did you mean ...? `` for a config that is no file: the shipped configs of its base name (``smoke``: four
    kinds have one), else the closest shipped names; the configs of a kind's folder; ``""`` when none is close.

    >>> shipped_like("smoke"), shipped_like("zzz")
    ('did you mean continual/smoke or meta/smoke or ner/smoke or tune/smoke? ', '')
    >>> shipped_like("rl/")[:34]
    'rl holds rl/cartpole_transfer, rl/'
    """
    key = str(name).removeprefix("configs/").removesuffix(".yaml").removesuffix(".yml").rstrip("/")
    names = shipped_configs()
    inside = [n for n in names if n.startswith(f"{key}/")]
    if inside:
        return f"{key} holds {', '.join(inside)}; "
    close = [n for n in names if n.split("/")[-1] == key] or difflib.get_close_matches(key, names, n=3, cutoff=0.75)
    return f"did you mean {' or '.join(close)}? " if close else ""


def config_path(name: str | Path) -> Path:
    """``name`` when it is a file, else the shipped config it names (``ner/smoke``, ``configs/ner/smoke.yaml``):
    the README's commands work from any folder, after any install."""
    path = Path(name)
    if path.exists():
        return path
    key = str(name).removeprefix("configs/").removesuffix(".yaml")
    shipped = resources.files("drml_ray") / "configs" / f"{key}.yaml"
    return Path(str(shipped)) if shipped.is_file() else path


def with_params(config: BaseModel, params: dict[str, Any]) -> Any:
    """``config`` with dotted keys replaced (``{"train.lr": 1e-4}``), validated again.

    >>> from drml_ray.config import FinetuneConfig
    >>> with_params(FinetuneConfig(name="x"), {"train.lr": 1e-4}).train.lr
    0.0001
    """
    data = config.model_dump(mode="json")
    for key, value in params.items():
        # (the YAML round trip keeps types: 1e-4 stays a float, "full" a string)
        try:
            apply_override(data, f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}", type(config))
        except ConfigError as err:
            raise ConfigError(str(err).removeprefix(f"--set {key}: ")) from None
    try:
        return type(config).model_validate(data)
    except ValidationError as err:
        raise ConfigError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None


def dump_config(config: BaseModel, exclude: set[str] | None = None) -> str:
    """The resolved config as YAML (less the ``exclude`` keys), loadable again by :func:`load_config`."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude=exclude), sort_keys=False)
