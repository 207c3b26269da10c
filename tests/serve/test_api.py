"""The serving API without Ray: request checks, model names, deployment options, the request log."""

from __future__ import annotations

import json
import math
import os
import pathlib

import pandas as pd
import pytest
import yaml

from drml_ray.data.reader import read_corpus_file
from drml_ray.errors import UserError
from drml_ray.ner.inputs import read_inputs
from drml_ray.serve.api import Limits, RequestError, answer, parse_predict
from drml_ray.serve.deploy import ServeOptions, deployment_options, parse_autoscale, serve_config
from drml_ray.serve.models import parse_sources, resolve, version
from drml_ray.serve.requestlog import RequestLog

LIMITS = Limits(max_chars=20, max_texts=3, max_body=200)


def test_a_text_and_a_list_of_texts_parse():
    one = parse_predict(b'{"text": "Anna met Bob"}', LIMITS)
    assert (one.texts, one.single, one.model) == (["Anna met Bob"], True, None)
    many = parse_predict(json.dumps({"texts": ["a b", "c"], "model": "m"}).encode(), LIMITS)
    assert (many.texts, many.single, many.model) == (["a b", "c"], False, "m")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"text": "x"', 400, "body"),  # not JSON
        (b"\xff\xfe", 400, "body"),  # not UTF-8
        (b'["x"]', 422, "body"),  # not an object
        (b"{}", 422, "text"),  # neither text nor texts
        (b'{"text": "a", "texts": ["b"]}', 422, "text"),  # both
        (b'{"txt": "a"}', 422, "txt"),  # unknown field
        (b'{"text": 3}', 422, "text"),  # wrong type
        (b'{"text": "   "}', 422, "text"),  # blank
        (b'{"text": "a\\u0000b"}', 422, "text"),  # a NUL
        (b'{"texts": ["a", "Paris \\ud800"]}', 422, "texts[1]"),  # a lone surrogate (the tokenizer's TypeError: a 500)
        (b'{"texts": "a"}', 422, "texts"),  # a string, not a list
        (b'{"texts": []}', 422, "texts"),  # nothing to tag
        (b'{"texts": ["a", null]}', 422, "texts[1]"),
        (b'{"texts": ["a", ""]}', 422, "texts[1]"),
        (b'{"texts": ["a", "b", "c", "d"]}', 413, "texts"),  # more than max_texts
        (b'{"text": "' + b"x" * 21 + b'"}', 413, "text"),  # more than max_chars
        (b'{"text": "a", "model": 1}', 422, "model"),
        (b'{"text": "' + b"x " * 100 + b'"}', 413, "body"),  # more than max_body bytes
    ],
)
def test_every_bad_request_names_its_field_and_status(body, status, field):
    with pytest.raises(RequestError) as err:
        parse_predict(body, LIMITS)
    assert (err.value.status, err.value.field) == (status, field)
    assert err.value.body()["error"]["field"] == field and err.value.body()["error"]["message"]


def test_a_field_named_with_a_lone_surrogate_is_named_in_an_answer_utf8_can_carry():
    with pytest.raises(RequestError) as err:  # (echoed as it came, the answer's encoding failed: a 500)
        parse_predict(b'{"\\ud800x": 1}', LIMITS)
    assert err.value.field == "\\ud800x" and json.dumps(err.value.body(), ensure_ascii=False).encode("utf-8")


def test_a_body_nested_deeper_than_the_json_decoder_goes_is_a_bad_request():
    with pytest.raises(RequestError) as err:  # (a RecursionError inside json.loads, a 500 before)
        parse_predict(b"[" * 100_000, Limits())
    assert (err.value.status, err.value.field, err.value.message) == (400, "body", "JSON nested too deeply")


def test_answers_keep_the_shape_of_the_request():
    record = {"text": "Bob", "entities": [{"type": "PER", "start": 0, "end": 3, "text": "Bob", "score": 0.9}]}
    single = answer(parse_predict(b'{"text": "Bob"}', LIMITS), [record], "m", "v1")
    assert single == {"model": "m", "version": "v1", **record}
    batch = answer(parse_predict(b'{"texts": ["Bob"]}', LIMITS), [record], "m", "v1")
    assert batch == {"model": "m", "version": "v1", "results": [record]}


def _model(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_a_run_directory_serves_its_best_folder_under_the_run_name(tmp_path):
    _model(tmp_path / "run1" / "best")
    (tmp_path / "run1" / "results.json").write_text("{}")
    source = resolve(tmp_path / "run1")
    assert (source.name, source.model_dir, source.run_dir) == ("run1", tmp_path / "run1" / "best", tmp_path / "run1")
    bare = resolve(_model(tmp_path / "bare"))
    assert (bare.name, bare.run_dir) == ("bare", None)


def test_a_hub_id_is_served_under_its_name_from_the_hub_cache(tmp_path, monkeypatch):
    from tests.helpers import offline_hub_cache

    snapshot = offline_hub_cache(tmp_path, monkeypatch, "org/ner-model")
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    source = resolve("org/ner-model")
    assert (source.name, source.model_dir, source.run_dir) == ("ner-model", snapshot, None)


def test_model_names_are_unique_and_well_formed(tmp_path):
    a, b = _model(tmp_path / "a"), _model(tmp_path / "b")
    assert [s.name for s in parse_sources(str(a), [f"other={b}"])] == ["a", "other"]
    for positional, named, fragment in [
        (str(a), [f"a={b}"], "used twice"),
        (None, [str(b)], "NAME=DIR"),
        (None, [f"bad name={b}"], "letters, digits"),
        (None, [], "nothing to serve"),
        (str(tmp_path / "missing"), [], "no such"),
        (str(tmp_path), [], "neither a model folder"),
    ]:
        with pytest.raises(UserError, match=fragment):
            parse_sources(positional, named)


def test_autoscaling_and_batching_become_serve_options(tmp_path):
    assert parse_autoscale("1:4") == (1, 4) and parse_autoscale(None) is None
    for bad in ("4:1", "0:0", "x", "1-4"):
        with pytest.raises(UserError, match="--autoscale"):
            parse_autoscale(bad)
    sources = [resolve(_model(tmp_path / "m"))]
    opts = deployment_options(sources, ServeOptions(autoscale=(1, 4), max_batch=16, cpus=2))
    assert opts["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16}
    assert "num_replicas" not in opts and opts["max_ongoing_requests"] == 512
    assert opts["ray_actor_options"] == {"num_cpus": 2}
    assert opts["user_config"]["models"] == [{"name": "m", "model_dir": str(tmp_path / "m"), "run_dir": None}]
    bad = {"replicas": (0, r"--replicas 0: out of range \(1 or more\)"), "dtype": ("float16", "--dtype float16"),
           "cpus": (math.inf, r"--cpus inf: out of range \(a number above 0\)"),  # (an internal error before)
           "batch_wait_ms": (math.nan, r"--batch-wait-ms nan: out of range \(0 to 10,000\)"),  # (a batch waits forever)
           "limits": (Limits(max_body=0), r"--max-body 0: out of range \(1 or more\)")}  # fmt: skip
    for key, (value, message) in bad.items():
        with pytest.raises(UserError, match=message):
            ServeOptions(**{key: value})


def test_the_built_config_is_a_valid_serve_deploy_file(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    sources = [resolve(_model(tmp_path / "m"))]
    config = serve_config(sources, ServeOptions(host="10.0.0.5", port=8001, replicas=2))
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert (app.import_path, app.route_prefix, schema.http_options.port) == ("drml_ray.serve.app:build_app", "/", 8001)
    assert schema.http_options.host == "10.0.0.5"  # (was 0.0.0.0 whatever --host said)
    assert app.deployments[0].num_replicas == 2


def test_the_request_log_is_a_corpus_folder(tmp_path):
    log = RequestLog(tmp_path / "log", flush_rows=2)
    record = {"text": "Anna met Bob", "entities": [{"type": "PER", "start": 0, "end": 4, "text": "Anna", "score": 1.0}]}
    log.add(["Anna", "met", "Bob"], ["B-PER", "O", "B-PER"], record, "m", "v1")
    assert list((tmp_path / "log").iterdir()) == []  # buffered until 2 rows
    log.add(["Bob"], ["B-PER"], {"text": "Bob", "entities": []}, "m", "v1")
    log.add(["Zed", "'s"], ["O", "O"], {"text": "Zed's", "entities": []}, "m", "v2")
    assert log.flush() is not None and log.flush() is None
    files = sorted((tmp_path / "log").glob("*.parquet"))
    assert len(files) == 2
    sentences = read_corpus_file(tmp_path / "log")
    assert [s.tokens for s in sentences] == [("Anna", "met", "Bob"), ("Bob",), ("Zed", "'s")]
    assert sentences[0].tags == ("B-PER", "O", "B-PER")
    frame = pd.read_parquet(tmp_path / "log")
    assert list(frame["version"]) == ["v1", "v1", "v2"] and json.loads(frame["entities"][0]) == record["entities"]
    # drml predict --input LOG tags the texts as served (offsets into them), not the words joined ("Zed 's")
    assert read_inputs(tmp_path / "log") == (["Anna met Bob", "Bob", "Zed's"], False, [None, None, None])
    assert read_inputs(files[1]).texts == ["Zed's"]


def test_the_request_log_folder_is_checked_before_anything_is_deployed(tmp_path):
    """A file where the folder goes failed the replicas inside Serve; a folder inside a served model or its run took
    in request logs (read with the model, emptied by the run's --overwrite)."""
    from typer.testing import CliRunner

    from drml_ray.cli import app
    from drml_ray.serve.deploy import log_folder

    _model(tmp_path / "run1" / "best")
    (tmp_path / "run1" / "results.json").write_text("{}")
    sources = parse_sources(str(tmp_path / "run1"), [])
    (tmp_path / "notes.txt").write_text("mine")
    assert log_folder(str(tmp_path / "served" / "day1"), sources) == str(tmp_path / "served" / "day1")
    assert log_folder(None, sources) is None
    with pytest.raises(UserError, match=r"notes.txt is a file; name a folder"):
        log_folder(str(tmp_path / "notes.txt" / "log"), sources)
    for inside in ("run1/best", "run1/best/log", "run1/log"):
        with pytest.raises(UserError, match=r"inside .*run1, served as 'run1'; keep the request logs"):
            log_folder(str(tmp_path / inside), sources)
    out, run = tmp_path / "serve.yaml", str(tmp_path / "run1")
    notes = str(tmp_path / "notes.txt")
    refused = CliRunner().invoke(app, ["serve", run, "--log-requests", notes, "--build", str(out)])
    assert refused.exit_code == 2 and "is a file" in refused.output and not out.exists()
    built = CliRunner().invoke(app, ["serve", run, "--log-requests", "~/served", "--build", str(out)])
    log_dir = yaml.safe_load(out.read_text())["applications"][0]["deployments"][0]["user_config"]["log_dir"]
    assert built.exit_code == 0 and log_dir == str(pathlib.Path("~/served").expanduser())


def test_the_cli_builds_a_deploy_file_and_refuses_a_detach_without_a_cluster(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from drml_ray.cli import app

    model = _model(tmp_path / "m")
    out = tmp_path / "serve.yaml"
    built = CliRunner().invoke(app, ["serve", str(model), "--build", str(out), "--autoscale", "1:3", "--port", "9000"])
    assert built.exit_code == 0, built.output
    config = yaml.safe_load(out.read_text())
    deployment = config["applications"][0]["deployments"][0]
    assert deployment["autoscaling_config"]["max_replicas"] == 3
    assert config["http_options"] == {"host": "0.0.0.0", "port": 9000}  # (a cluster's default: every interface)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    detached = CliRunner().invoke(app, ["serve", str(model), "--detach"])
    assert detached.exit_code == 2 and "RAY_ADDRESS" in detached.output
    wrong = CliRunner().invoke(app, ["serve", str(model), "--autoscale", "3:1", "--build", str(out)])
    assert wrong.exit_code == 2 and "--autoscale" in wrong.output
    again = CliRunner().invoke(app, ["serve", str(model), "--build", str(out), "--port", "9001"])  # (its own: replaced)
    assert again.exit_code == 0 and yaml.safe_load(out.read_text())["http_options"]["port"] == 9001
    hosted = CliRunner().invoke(app, ["serve", str(model), "--build", str(out), "--host", "10.0.0.5"])
    assert hosted.exit_code == 0 and yaml.safe_load(out.read_text())["http_options"]["host"] == "10.0.0.5"
    (tmp_path / "exp.yaml").write_text("name: mine\n")  # (a file it did not write: kept)
    other = CliRunner().invoke(app, ["serve", str(model), "--build", str(tmp_path / "exp.yaml")])
    assert other.exit_code == 2 and "exp.yaml: exists, and drml serve --build did not write it" in other.output
    assert (tmp_path / "exp.yaml").read_text() == "name: mine\n"


def test_the_high_throughput_mode_is_set_only_for_a_ray_this_process_starts(monkeypatch):
    import ray

    from drml_ray.serve.deploy import HIGH_THROUGHPUT_ENV, use_high_throughput_mode

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    for name in HIGH_THROUGHPUT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "0")  # the user's choice stays
    monkeypatch.setenv("RAY_ADDRESS", "auto")  # a cluster keeps the mode it was started with
    use_high_throughput_mode()
    assert "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in os.environ
    monkeypatch.delenv("RAY_ADDRESS")
    use_high_throughput_mode()
    assert os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1" and os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"


def test_an_address_this_machine_cannot_listen_on_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """A port another program holds made Serve's proxy fail inside Ray with a traceback ('internal error')."""
    import socket

    from typer.testing import CliRunner

    from drml_ray.cli import app
    from drml_ray.serve.deploy import check_address
    from tests.test_malformed import tiny_model

    tiny_model()(tmp_path / "model")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # (a Ray of its own: on a running one Serve may hold the port)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(UserError, match=f"--port {port}: another program listens there"):
            check_address("127.0.0.1", port)
        result = CliRunner().invoke(app, ["serve", str(tmp_path / "model"), "--port", str(port)])
        assert result.exit_code == 2 and "another program listens there" in result.output, result.output
    check_address("127.0.0.1", port)  # free again
    with pytest.raises(UserError, match="--host 198.51.100.7: not an address of this machine"):
        check_address("198.51.100.7", port)  # (TEST-NET-2: documentation only, never a machine's)


def test_a_models_version_follows_its_shards_and_its_pickled_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "pytorch_model.bin"):
        before = version(tmp_path)
        (tmp_path / name).write_bytes(b"weights")
        assert version(tmp_path) != before, name


def test_a_head_of_unnamed_labels_is_refused_before_serve_starts_a_replica(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}))
    with pytest.raises(UserError, match=r"its head's labels are LABEL_0, LABEL_1 \(config.json's id2label\)"):
        resolve(tmp_path, "ner")
