from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drml_ray.config import ConfigError, FinetuneConfig, dump_config, load_config
from drml_ray.continual.config import ContinualExperiment
from drml_ray.irl.config import IRLExperiment
from drml_ray.meta.config import MetaExperiment
from drml_ray.rl.config import RLExperiment

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_name_from_file_stem(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  lr: 1e-5\n"))
    assert cfg.name == "exp"
    assert cfg.train.lr == pytest.approx(1e-5)  # YAML 1.1 would read 1e-5 as a string
    assert cfg.model.backbone == "minilm"


def test_a_short_window_gets_an_overlap_that_fits_it_unless_one_is_given(tmp_path):
    # (the default overlap of 16 words refused every max_length under 34 with an error about a key not written)
    assert load_config(write(tmp_path, "model: {max_length: 32}\n")).model.window_overlap == 8
    assert load_config(write(tmp_path, "model: {}\n"), ["model.max_length=16"]).model.window_overlap == 4
    assert load_config(write(tmp_path, "model: {max_length: 512}\n")).model.window_overlap == 16
    assert load_config(write(tmp_path, "model: {max_length: 32, window_overlap: 3}\n")).model.window_overlap == 3


def test_unknown_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "name: x\ntrain:\n  epochs: 2\n  momentum: 0.9\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:4: train.momentum: unknown key (known: epochs, batch_size,")


def test_unknown_key_suggests_the_closest_known_one(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml:2: trian: unknown key \(did you mean 'train'\? known: name,"):
        load_config(write(tmp_path, "name: x\ntrian: {epochs: 2}\n"))
    path = write(tmp_path, "irl:\n  families:\n    nav2d: {iterz: 3}\n")
    with pytest.raises(ConfigError, match=r":3: irl.families.nav2d.iterz: unknown key \(did you mean 'iters'\?"):
        load_config(path)


def test_a_file_of_many_mistakes_lists_ten_and_counts_the_rest(tmp_path):
    text = "name: x\n" + "".join(f"key{i}: {i}\n" for i in range(15))
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines[:10]] == [f"key{i}" for i in range(10)]
    assert lines[10:] == ["... and 5 more"]
    with pytest.raises(ConfigError) as err:  # (an 11th mistake is shown, not counted)
        load_config(write(tmp_path, "name: x\n" + "".join(f"key{i}: {i}\n" for i in range(11))))
    assert len(str(err.value).splitlines()) == 11 and "more" not in str(err.value)


def test_a_file_of_another_kind_says_which_commands_run_it(tmp_path):
    irl = write(tmp_path, "env: {family: nav2d}\nirl: {demos: [4]}\n")
    expected = r"^\S+exp.yaml: an experiment of drml rl expert, drml rl irl, drml rl meta-irl \(it has irl:\), not of"
    with pytest.raises(ConfigError, match=expected + r" this command\n\S+exp.yaml:1: env: unknown key"):
        load_config(irl, model=FinetuneConfig)
    finetune = write(tmp_path, "data: {corpus: generated}\n")
    with pytest.raises(ConfigError, match=r"^\S+: an experiment of drml finetune \(it has no meta:\), not of this"):
        load_config(finetune, model=MetaExperiment)
    with pytest.raises(ConfigError) as err:  # (a file of the command's own kind: its errors alone)
        load_config(write(tmp_path, "meta: {meta_stepz: 3}\n"), model=MetaExperiment)
    assert "not of this command" not in str(err.value)


def test_an_empty_path_is_refused_not_read_as_the_working_folder(tmp_path):
    # ("" resolved to the folder drml was started in: a backbone or corpus file nobody named)
    with pytest.raises(ConfigError, match=r"exp.yaml:1: model.backbone: String should have at least 1 character"):
        load_config(write(tmp_path, "model: {backbone: ''}\n"))
    with pytest.raises(ConfigError, match=r"exp.yaml:1: data.train: String should have at least 1 character"):
        load_config(write(tmp_path, "data: {train: '', dev: d.conll, test: t.conll}\n"))


def test_a_corpus_file_not_there_is_named_at_its_line_and_one_beside_the_config_said_so(tmp_path, monkeypatch):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "train.conll").write_text("Anna B-PER\n")
    cfg = tmp_path / "exp" / "x.yaml"
    there = tmp_path / "exp" / "train.conll"
    cfg.write_text(f"data:\n  dev: {there}\n  train: train.conll\n  test: {there}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(cfg).data.train == str(tmp_path / "train.conll")  # (no check unless a command runs it)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, check_files=True)
    assert str(err.value) == (
        f"{cfg}:3: data.train: {tmp_path / 'train.conll'}: no such file or folder; {cfg.parent / 'train.conll'} is "
        f"there, beside the config, but a relative path is read from the folder drml runs in "
        f"({tmp_path}): write it as {cfg.parent / 'train.conll'}, or run drml from {cfg.parent}"
    )
    with pytest.raises(ConfigError, match=r"^--set: data.test: .*/nope.conll: no such file or folder$"):
        load_config(cfg, ["data.train=exp/train.conll", "data.test=nope.conll"], check_files=True)
    assert load_config(cfg, ["data.train=exp/train.conll"], check_files=True).data.train == str(there)
    for split in ("train", "dev", "test"):  # a task folder beside the config: the same hint, at validation
        (tmp_path / "exp" / "clin" / f"{split}.conll").parent.mkdir(exist_ok=True)
        (tmp_path / "exp" / "clin" / f"{split}.conll").write_text("Anna B-PER\n")
    meta = write(tmp_path / "exp", "name: m\nmeta: {heldout_tasks: [./clin]}\n")
    with pytest.raises(
        ConfigError,
        match=r"exp.yaml:2: meta.heldout_tasks.0: task './clin': no such folder; "
        rf"{tmp_path / 'exp' / 'clin'} is there, beside the config",
    ):
        load_config(meta)
    corpus = write(tmp_path / "exp", "name: c\ndata: {corpus: clin}\n", "c.yaml")  # (no slash: a corpus name)
    with pytest.raises(ConfigError, match=r"data.corpus: unknown corpus 'clin'"):
        load_config(corpus)
    monkeypatch.chdir(tmp_path / "exp")
    assert load_config(meta).meta.heldout_tasks == [str(tmp_path / "exp" / "clin")]
    irl = write(tmp_path, "name: i\nenv: {family: nav2d}\nirl: {experts_dir: runs/experts}\n", "irl.yaml")
    with pytest.raises(ConfigError, match=r"irl.yaml:3: irl.experts_dir: .*/exp/runs/experts: no such file or folder$"):
        load_config(irl, check_files=True)  # (every path a config names, whatever its kind)


def test_each_file_a_search_would_train_on_is_checked_with_the_config(tmp_path, monkeypatch):
    """A searched path not there was found only by its trial, inside Tune, after the search had started."""
    for name in ("a.conll", "exp/b.conll"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("Anna B-PER\n")
    cfg = write(tmp_path / "exp", "data: {train: a.conll, dev: a.conll, test: a.conll}\n"
                "tune:\n  space:\n    data.train: {grid: [a.conll, b.conll]}\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert load_config(cfg).tune.space["data.train"].grid == [str(tmp_path / "a.conll"), str(tmp_path / "b.conll")]
    with pytest.raises(ConfigError, match=r"exp.yaml:4: tune.space.data.train: .*/b.conll: no such file or folder; "
                       rf"{tmp_path / 'exp' / 'b.conll'} is there, beside the config"):  # fmt: skip
        load_config(cfg, check_files=True)
    assert load_config(cfg, ["tune.space.data.train.grid=[a.conll, exp/b.conll]"], check_files=True)


def test_a_backbone_is_checked_with_the_files_a_config_names(tmp_path, monkeypatch):
    """A path that cannot be a Hub id and names nothing, a run directory and a folder with no model are named at
    the backbone's line (they were an error from the tokenizer, on no line); a Hub id is left to load."""
    (tmp_path / "exp" / "bert" / "config.json").parent.mkdir(parents=True)
    (tmp_path / "exp" / "bert" / "config.json").write_text("{}")
    (tmp_path / "exp" / "bert" / "model.safetensors").write_bytes(b"")
    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "best" / "config.json").write_text("{}")
    cfg = write(tmp_path / "exp", "data: {corpus: generated}\nmodel: {backbone: ./bert}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"exp.yaml:2: model.backbone: ./bert: no such folder, nor a Hub id "
                       rf"\(ORG/NAME\); {tmp_path / 'exp' / 'bert'} is there, beside the config"):  # fmt: skip
        load_config(cfg, check_files=True)
    assert load_config(cfg, ["model.backbone=exp/bert"], check_files=True).model.backbone == str(tmp_path / "exp/bert")
    for name in ("org/bert-base", "bert-base-cased", "minilm"):  # (Hub ids: their download names what is wrong)
        assert load_config(cfg, [f"model.backbone={name}"], check_files=True).model.backbone == name
    with pytest.raises(ConfigError, match=rf"^--set: model.backbone: {tmp_path / 'run'}: a run directory; its model "
                       rf"is {tmp_path / 'run' / 'best'}$"):  # fmt: skip
        load_config(cfg, ["model.backbone=run"], check_files=True)
    with pytest.raises(ConfigError, match=r"^--set: model.backbone: .*/exp: neither a model folder \(config.json\) "
                       r"nor a run directory with best/config.json; 1 model folder inside: .*/exp/bert$"):  # fmt: skip
        load_config(cfg, ["model.backbone=exp"], check_files=True)
    searched = ["tune.space={model.backbone: {grid: [exp/bert, ./bret]}}"]
    with pytest.raises(ConfigError, match=r"^--set: tune.space.model.backbone: ./bret: no such folder, nor a Hub"):
        load_config(cfg, searched, check_files=True)
    meta = write(tmp_path, "name: m\nmeta: {}\neval: {conll_model: run}\n", "meta.yaml")  # (any model folder)
    with pytest.raises(ConfigError, match=r"meta.yaml:3: eval.conll_model: .*/run: a run directory; its model is"):
        load_config(meta, check_files=True)
    assert load_config(meta, ["eval.conll_model=run/best"], check_files=True).eval.conll_model.endswith("run/best")


def test_an_error_a_command_finds_in_a_config_key_names_its_line(tmp_path):
    """Found once the command ran (the backbone's positions, a trial's metric): the key's line, or --set."""
    from drml_ray.config import at_its_line
    from drml_ray.errors import RunExistsError, UserError

    cfg = write(tmp_path, "name: x\nmodel:\n  backbone: minilm\n  max_length: 600\n")

    def raised(error: UserError, overrides: tuple[str, ...] = ()) -> UserError:
        with pytest.raises(UserError) as caught, at_its_line(cfg, list(overrides), FinetuneConfig):
            raise error
        return caught.value

    too_long = UserError("model.max_length 600: the backbone has 512 positions")
    assert str(raised(too_long)) == f"{cfg}:4: model.max_length 600: the backbone has 512 positions"
    set_there = raised(UserError("model.max_length 700: x"), ("model.max_length=700",))
    assert str(set_there) == "--set: model.max_length 700: x"
    assert str(raised(UserError("train.head_lr is set"))) == f"{cfg}: train.head_lr is set"  # (a default: no line)
    for kept in (UserError("runs/x: no such run directory"), UserError("model.nope: x"), RunExistsError("model.x")):
        assert raised(kept) is kept


def test_merge_keys_merge_and_a_key_beside_them_wins(tmp_path):
    path = write(tmp_path, "data: {corpus: generated}\ntrain: {<<: [{epochs: 2, lr: 0.1}], lr: 0.002}\n")
    assert (load_config(path).train.epochs, load_config(path).train.lr) == (2, 0.002)
    with pytest.raises(ConfigError, match=r"exp.yaml:1: invalid YAML: duplicate key 'lr'"):
        load_config(write(tmp_path, "train: {<<: {epochs: 2}, lr: 0.1, lr: 0.2}\n"))


def test_wrong_type_is_not_coerced(tmp_path):
    path = write(tmp_path, "model:\n  strategy: full\ntrain:\n  epochs: '3'\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:4: train.epochs: Input should be a valid integer \(got '3'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: '3'\n", r"exp.yaml:2: train.epochs: Input should be a valid integer \(got '3'; a number "
         r"in quotes is text: write it without them\)$"),
        ("train: {lr: '1e-5'}\n", r"train.lr: Input should be a valid number \(got '1e-5'; a number in quotes"),
        ("model: {strategy: '3'}\n", r"model.strategy: Input should be 'full', 'top' or 'lora' \(got '3'\)$"),
        ("data: {context: 'true'}\n", r"data.context: .* \(got 'true'; true in quotes is text: write it without"),
        ("train: {fused_adamw: 0}\n", r"train.fused_adamw: .* \(got 0; write false\)$"),
        ("name: 2024\n", r"exp.yaml:1: name: .* \(got 2024; write it in quotes to make it text: '2024'\)$"),
        ("model: {lora: {target_modules: query}}\n", r"model.lora.target_modules: .* \(got 'query'; write a list: "
         r"\[query\]\)$"),
        ("train:\n\tepochs: 3\n", r"exp.yaml:2: invalid YAML: .*'\\t'.*; YAML indents with spaces, not tabs$"),
        ("model: {strategy: LoRA}\n", r"model.strategy: .* \(got 'LoRA'; did you mean 'lora'\?\)$"),
        ("train: {precision: bf-16}\n", r"train.precision: .* \(got 'bf-16'; did you mean 'bf16'\?\)$"),
        ("model: {strategy: adapters}\n", r"model.strategy: Input should be 'full', .* \(got 'adapters'\)$"),
    ],
)  # fmt: skip
def test_a_value_yaml_reads_as_another_type_says_how_to_write_it(tmp_path, text, message):
    """Quotes make text of a number or true, a bare number is not a name, one name is not a list, a tab does not
    indent, a choice close to an option is named; where no hint fits (``strategy: '3'``), none is given."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_a_dotted_key_written_in_a_file_is_shown_nested(tmp_path):
    """``train.epochs: 3`` at the top of a file (as ``--set`` writes it) names how a file writes it; a dotted key
    that names nothing is an unknown key as any other."""
    with pytest.raises(ConfigError, match=r"exp.yaml:1: train.epochs: unknown key: a dotted key, as --set takes it; "
                       r"in a file, write it nested: train: \{epochs: ...\}"):  # fmt: skip
        load_config(write(tmp_path, "train.epochs: 3\n"))
    with pytest.raises(ConfigError, match=r"exp.yaml:1: data.generated.train: unknown key: .*nested: "
                       r"data: \{generated: \{train: ...\}\}"):  # fmt: skip
        load_config(write(tmp_path, "data.generated.train: 3\n"))
    with pytest.raises(ConfigError, match=r"exp.yaml:1: train.epochz: unknown key \(known: name, "):
        load_config(write(tmp_path, "train.epochz: 3\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: {learning_rate: 1.0e-4}\n", r"exp.yaml:1: train.learning_rate: unknown key \(Hugging Face's name; "
         r"drml's is train.lr\)$"),
        ("num_train_epochs: 3\n", r"exp.yaml:1: num_train_epochs: unknown key \(Hugging Face's name; drml's is "
         r"train.epochs\)$"),
        ("train: {bf16: true}\n", r"train.bf16: unknown key \(Hugging Face's name; drml's is train.precision: bf16\)"),
        ("output_dir: runs/x\n", r"output_dir: unknown key \(Hugging Face's name; drml's is the command's "
         r"--output-dir\)$"),
        ("train: {LR: 0.1}\n", r"train.LR: unknown key \(did you mean 'lr'\? known: epochs, "),
        ("env: {family: nav2d}\nnum_train_epochs: 3\n", r"exp.yaml:2: num_train_epochs: unknown key \(known: name, "),
        ("env: {family: nav2d}\nppo: {clip_param: 0.1}\n", r"exp.yaml:2: ppo.clip_param: unknown key \(RLlib's name; "
         r"drml's is ppo.clip\)$"),
        ("env: {family: nav2d}\nppo: {learning_rate: 0.1}\n", r"ppo.learning_rate: unknown key \(Hugging Face's name; "
         r"drml's is ppo.lr\)$"),
    ],
)  # fmt: skip
def test_a_key_by_another_tools_name_or_in_capitals_names_drmls(tmp_path, text, message):
    """A user of ``TrainingArguments`` or RLlib's PPO writes their names; where the experiment has that setting (an
    RL experiment has no ``train.epochs``), the error names drml's key; a key in capitals is matched as in small
    letters."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_bad_choice_lists_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml:2: model.strategy: Input should be 'full', 'top' or 'lora'"):
        load_config(write(tmp_path, "model:\n  strategy: adapters\n"))


def test_overrides_are_parsed_as_yaml_and_checked(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 2\n")
    cfg = load_config(path, ["train.epochs=5", "model.lora.r=4", "model.lora.target_modules=[query, key]"])
    assert (cfg.train.epochs, cfg.model.lora.r, cfg.model.lora.target_modules) == (5, 4, ["query", "key"])
    unknown = r"--set train.epoch: unknown key 'epoch' in train \(did you mean 'epochs'\? known: epochs, batch_size"
    with pytest.raises(ConfigError, match=unknown):
        load_config(path, ["train.epoch=5"])
    with pytest.raises(ConfigError, match=r"--set: train.epochs: Input should be a valid integer"):
        load_config(path, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["train.epochs"])
    with pytest.raises(ConfigError, match=r"^--set train.epochs: '\[1' is not a YAML value \(expected ',' or ']'"):
        load_config(path, ["train.epochs=[1"])
    with pytest.raises(ConfigError, match=r"^--set data.train: a byte that is not UTF-8 \(0xff\) at character 3; "):
        load_config(path, [b"data.train=ab\xff.conll".decode("utf-8", "surrogateescape")])  # (a Latin-1 terminal)
    with pytest.raises(ConfigError, match=r"exp.yaml:1 with --set model.max_length: model: window_overlap \(20\) mu"):
        load_config(write(tmp_path, "model:\n  window_overlap: 20\n"), ["model.max_length=32"])
    with pytest.raises(ConfigError, match=r"^--set: model.lora.r: Input should be greater"):  # not the file's line
        load_config(write(tmp_path, "model:\n  strategy: lora\n"), ["model.lora={r: 0}"])


def test_a_mapping_set_on_a_section_changes_the_keys_it_names_and_keeps_the_others(tmp_path):
    # (it replaced the section: --set 'train={epochs: 1}' put the file's lr 0.1 back to the default 5e-5)
    path = write(tmp_path, "train: {lr: 0.1, epochs: 2}\nmodel: {strategy: lora, lora: {r: 4, alpha: 32}}\n")
    cfg = load_config(path, ["train={epochs: 1}", "model={lora: {r: 8}}"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.model.strategy, cfg.model.lora.r, cfg.model.lora.alpha) == (
        0.1, 1, "lora", 8, 32)  # fmt: skip
    families = write(tmp_path, "irl:\n  families:\n    nav2d: {iters: 3}\n    cartpole: {iters: 4}\n")
    assert list(load_config(families, ["irl.families={cartpole: {}}"]).irl.families) == ["cartpole"]  # a choice


def test_a_check_across_sections_names_the_line_and_the_set_key_its_message_names(tmp_path):
    path = write(tmp_path, "name: x\ntrain: {grad_accum: 3, batch_size: 8}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:2: train.batch_size (8) must be a multiple of scaling.num_workers x")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "name: x\n"), ["train.grad_accum=3", "train.lr=0.1", "train.batch_size=8"])
    assert str(err.value).startswith(f"{path} with --set train.batch_size, train.grad_accum: train.batch_size (8)")
    fp16 = write(tmp_path, "name: x\nscaling: {num_workers: 1}\ntrain: {precision: fp16}\n")  # (silently fp32 before)
    with pytest.raises(ConfigError, match=rf"^{fp16}:3: train.precision: fp16 needs scaling.use_gpu: true"):
        load_config(fp16)
    assert load_config(fp16, ["scaling.use_gpu=true"]).train.precision == "fp16"


def test_overrides_reach_into_a_mapping_of_sections_by_name(tmp_path):
    path = write(tmp_path, "irl:\n  families:\n    nav2d: {iters: 3}\n")
    cfg = load_config(path, ["irl.families.nav2d.iters=7", "irl.families.cartpole.task.length=0.5"])
    assert (cfg.irl.families["nav2d"].iters, cfg.irl.families["cartpole"].task) == (7, {"length": 0.5})
    with pytest.raises(ConfigError, match=r"key 'iter' in irl.families.nav2d \(did you mean 'iters'\? known: task"):
        load_config(path, ["irl.families.nav2d.iter=7"])
    with pytest.raises(ConfigError, match=r"irl.families.walker"):
        load_config(path, ["irl.families.walker.iters=7"])


def test_an_override_names_a_search_space_key_whole_dots_and_all(tmp_path):
    # (the space's names are config keys: tune.space.train.lr was read as a key 'lr' inside a name 'train')
    path = write(tmp_path, "tune:\n  space:\n    train.epochs: {choice: [1, 2]}\n")
    overrides = ["tune.space.train.lr={loguniform: [1.0e-5, 1.0e-3]}", "tune.space.train.epochs.choice=[3]"]
    cfg = load_config(path, overrides)
    assert {k: (d.kind, d.args) for k, d in cfg.tune.space.items()} == {
        "train.epochs": ("choice", [3]), "train.lr": ("loguniform", [1.0e-5, 1.0e-3])}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^--set: tune.space.train.lrx: unknown key 'lrx' in train \(did you mean"):
        load_config(path, ["tune.space.train.lrx={uniform: [0.1, 0.2]}"])


def test_a_searched_relative_path_is_held_absolute_as_the_driver_reads_it(tmp_path, monkeypatch):
    # a trial runs in its own folder (Tune changes its working folder): ./clinical must not be read from there
    (tmp_path / "clinical").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "clinical" / f"{split}.conll").write_text("Anna\tB-PER\n")
    monkeypatch.chdir(tmp_path)
    searched = ("    data.corpus: {grid: [./clinical, conll2003]}\n    data.train: {choice: [./a.conll]}\n"
                "    train.lr: {choice: [1.0e-4]}\n")  # fmt: skip
    path = write(tmp_path, f"data: {{corpus: generated}}\ntune:\n  space:\n{searched}")
    space = load_config(path).tune.space
    assert space["data.corpus"].args == [str(tmp_path / "clinical"), "conll2003"]
    assert space["data.train"].args == [str(tmp_path / "a.conll")] and space["train.lr"].args == [1.0e-4]


def test_batch_must_split_over_workers_and_accumulation(tmp_path):
    with pytest.raises(ConfigError, match=r"batch_size \(10\) must be a multiple of .* \(4\)"):
        load_config(write(tmp_path, "train: {batch_size: 10, grad_accum: 2}\nscaling: {num_workers: 2}\n"))


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_dump_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, "name: r\ntrain: {lr: 3e-4}\n"), ["model.strategy=lora"])
    again = load_config(write(tmp_path, dump_config(cfg), "again.yaml"))
    assert again == cfg


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    kind = (IRLExperiment if "irl" in data or "expert" in data else RLExperiment if "env" in data
            else MetaExperiment if "meta" in data
            else ContinualExperiment if "continual" in data else FinetuneConfig)  # fmt: skip
    assert isinstance(load_config(path), kind)


def test_an_env_section_makes_an_rl_experiment_with_the_same_errors(tmp_path):
    cfg = load_config(write(tmp_path, "env:\n  family: pendulum\nmeta:\n  meta_steps: 3\n"))
    assert isinstance(cfg, RLExperiment) and cfg.meta.meta_steps == 3 and cfg.eval.seeds == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigError, match=r"exp.yaml:2: env.family: Input should be 'nav2d', 'cartpole' or 'pendulum'"):
        load_config(write(tmp_path, "env:\n  family: hopper\n"))
    with pytest.raises(ConfigError, match=r"exp.yaml:3: ppo.discount: unknown key"):
        load_config(write(tmp_path, "env: {}\nppo:\n  discount: 0.9\n"))
    with pytest.raises(ConfigError, match=r"envs \(3\) must divide train_batch \(2000\)"):
        load_config(write(tmp_path, "env: {}\nppo:\n  envs: 3\n"))
    with pytest.raises(ConfigError, match=r"transfer.source: Field required"):
        load_config(write(tmp_path, "env: {}\ntransfer:\n  target: {length: 1.0}\n"))


def test_a_meta_section_makes_a_meta_experiment_with_the_same_errors(tmp_path):
    cfg = load_config(write(tmp_path, "meta:\n  heldout_tasks: [crossner_ai]\n  train_tasks: [conll2003]\n"))
    assert isinstance(cfg, MetaExperiment) and cfg.eval.shots == [10, 25, 50, 100, "all"]
    path = write(tmp_path, "meta:\n  inner_steps: 2\n  outer_steps: 3\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:3: meta.outer_steps: unknown key"):
        load_config(path)
    path = write(tmp_path, "meta:\n  train_tasks: [crossner_ai]\n  heldout_tasks: [crossner_ai]\n")
    with pytest.raises(ConfigError, match="tasks both meta-trained and held out: crossner_ai"):
        load_config(path)
    with pytest.raises(ConfigError, match="shots are positive integers or 'all'"):
        load_config(write(tmp_path, "meta: {}\neval:\n  shots: [0, all]\n"))
    with pytest.raises(ConfigError) as err:  # one message, not one per member of int | 'all'
        load_config(write(tmp_path, "meta: {}\neval:\n  shots: [many]\n"))
    assert str(err.value).endswith("eval.shots: shots are positive integers or 'all' (got ['many'])")
    for tasks in ("train_tasks: []", "heldout_tasks: []"):  # (an IndexError and a ZeroDivisionError once)
        with pytest.raises(ConfigError, match=r"List should have at least 1 item"):
            load_config(write(tmp_path, f"meta:\n  {tasks}\n"))
    with pytest.raises(ConfigError, match=r"unknown task 'ORG'.*a comma ends an item: quote the task"):
        load_config(write(tmp_path, "meta:\n  heldout_tasks: [generated:PER,ORG]\n"))


def test_a_kind_that_moves_every_weight_refuses_another_strategy_at_the_model_line(tmp_path):
    path = write(tmp_path, "name: m\nmodel:\n  strategy: lora\nmeta: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (
        str(err.value)
        == f"{path}:2: model: strategy must be full for meta-learning (the inner loop moves every weight)"
    )
    path = write(tmp_path, "continual: {}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml with --set model.strategy: model: strategy must be full for c"):
        load_config(path, ["model.strategy=top"])
    assert load_config(path, ["model.strategy=full"]).model.strategy == "full"


def test_document_training_windows_without_context_name_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml:2: data.context_train: document .* needs data.context"):
        load_config(write(tmp_path, "data:\n  context_train: document\n"))  # (the key's line, named once)
    assert load_config(write(tmp_path, "data:\n  context: true\n  context_train: document\n")).data.context
