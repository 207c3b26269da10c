"""The Ray Serve deployment behind ``drml serve``: a FastAPI ingress whose replicas each hold every served model.

Requests from many clients are tagged together (``@serve.batch``: up to ``max_batch`` requests, waiting at
most ``batch_wait_ms`` for a batch to fill); ``dtype: bfloat16`` runs the forward passes under autocast.
Which models are served is the deployment's ``user_config``: deploying other model folders (``drml serve``
again against the same Ray, or ``serve deploy`` of an edited config) calls ``reconfigure`` on the running
replicas, which load the new models and then switch to them in one assignment. Requests never wait for a
replica to restart, and every answer names the model and the version that served it.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at definition.
import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve  # RAY

from drml_ray.ner.evaluate import SavedModel, load_saved_model
from drml_ray.ner.predict import tag_texts
from drml_ray.serve.api import Limits, PredictAnswer, PredictBody, PredictRequest, RequestError, answer, parse_predict
from drml_ray.serve.models import ModelSource, describe
from drml_ray.serve.requestlog import RequestLog

log = logging.getLogger("ray.serve")

api = FastAPI(
    title="drml-ray NER",
    description="Named-entity recognition with models fine-tuned by drml-ray. The answers have the JSON of "
    "`drml predict`: entities with character offsets and scores.",
    version="1",
)
BODY_DOC = {
    "requestBody": {"content": {"application/json": {"schema": PredictBody.model_json_schema()}}, "required": True}
}
"""The predict routes read their bodies themselves (to cap their size); this documents them on /docs."""


@dataclass
class Loaded:
    """A served model: its weights and what ``GET /v1/models`` says of it."""

    saved: SavedModel
    info: dict[str, Any]


def load_models(sources: list[dict], dtype: str = "float32") -> dict[str, Loaded]:
    """Every model of a ``user_config``'s ``models`` list, loaded (in order: the first is the default)."""
    autocast = torch.bfloat16 if dtype == "bfloat16" else None
    models = {}
    for spec in sources:
        source = ModelSource.from_config(spec)
        saved = load_saved_model(source.model_dir, autocast=autocast)
        models[source.name] = Loaded(saved, describe(source, saved.labels))
    return models


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, but no more than ``limit + 1`` bytes of it: enough for ``parse_predict`` to refuse an
    oversize body without reading it whole."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


@serve.deployment(name="ner")  # RAY: replicas, CPUs, autoscaling and max_ongoing_requests come from deploy.py
@serve.ingress(api)
class NerServer:
    """One replica: the served models, the request limits and (optionally) the request log."""

    def __init__(self, limits: dict[str, int], threads: int = 1):
        torch.set_num_threads(threads)
        self.limits = Limits(**limits)
        self.models: dict[str, Loaded] = {}
        self.request_log: RequestLog | None = None

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Load the models of ``config`` beside the served ones, then switch to them at once."""
        models = await asyncio.to_thread(load_models, config["models"], config.get("dtype", "float32"))
        self.predict_batch.set_max_batch_size(int(config["max_batch"]))
        self.predict_batch.set_batch_wait_timeout_s(float(config["batch_wait_ms"]) / 1000)
        if config.get("log_dir") and (self.request_log is None or str(self.request_log.folder) != config["log_dir"]):
            self.request_log = RequestLog(config["log_dir"])
        self.models = models
        log.info("serving %s", ", ".join(f"{n} ({m.info['version']})" for n, m in models.items()))

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok" if self.models else "loading", "models": list(self.models)}

    @api.get("/v1/models")
    async def list_models(self) -> dict[str, Any]:
        return {"default": next(iter(self.models), None), "models": [m.info for m in self.models.values()]}

    @api.post("/v1/predict", response_model=PredictAnswer, response_model_exclude_none=True, openapi_extra=BODY_DOC)
    async def predict(self, request: Request) -> Any:
        """Tag ``{"text": ...}`` or ``{"texts": [...]}`` with the default model or the one named in ``model``."""
        return await self._serve(request, None)

    @api.post("/v1/models/{name}/predict", response_model=PredictAnswer, response_model_exclude_none=True,
              openapi_extra=BODY_DOC)  # fmt: skip
    async def predict_with(self, name: str, request: Request) -> Any:
        """Tag with the model ``name`` (as ``GET /v1/models`` lists it)."""
        return await self._serve(request, name)

    async def _serve(self, request: Request, path_model: str | None) -> Any:
        try:
            checked = parse_predict(await read_body(request, self.limits.max_body), self.limits)
            name = self._pick(path_model, checked.model)
        except RequestError as err:
            return JSONResponse(err.body(), status_code=err.status)
        models = self.models  # the same model for the whole request, even if a swap lands meanwhile
        records = await self.predict_batch((models[name], checked))
        # A JSONResponse skips FastAPI's re-validation of the answer through PredictAnswer (that is for /docs).
        return JSONResponse(answer(checked, records, name, models[name].info["version"]))

    def _pick(self, path_model: str | None, body_model: str | None) -> str:
        if not self.models:
            raise RequestError(503, "model", "the models are still loading; retry")
        if path_model and body_model and path_model != body_model:
            raise RequestError(422, "model", f"the path names {path_model!r} but the body {body_model!r}")
        name = path_model or body_model or next(iter(self.models))
        if name not in self.models:
            raise RequestError(404, "model", f"no model {name!r}; served: {', '.join(self.models)}")
        return name

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)  # RAY: reconfigure sets both from the CLI
    async def predict_batch(self, items: list[tuple[Loaded, PredictRequest]]) -> list[list[dict]]:
        # In the event loop, not a worker thread: BERT's forward is many small ops whose Python holds the GIL, and
        # a thread fighting the loop for it made batches of 1-2 requests and 30% less throughput (measured).
        return self._tag(items)

    def _tag(self, items: list[tuple[Loaded, PredictRequest]]) -> list[list[dict]]:
        """Every request of a batch, the texts for one model tagged in one call."""
        out: list[list[dict]] = [[] for _ in items]
        for model in {id(m): m for m, _ in items}.values():
            mine = [i for i, (m, _) in enumerate(items) if m is model]
            texts = [t for i in mine for t in items[i][1].texts]
            tagged = iter(tag_texts(model.saved, texts, pretokenized=False))
            for i in mine:
                rows = [next(tagged) for _ in items[i][1].texts]
                out[i] = [record for record, _, _ in rows]
                self._log(model, rows)
        return out

    def _log(self, model: Loaded, rows: list[tuple[dict, list[str], list[str]]]) -> None:
        if self.request_log is not None:
            for record, words, tags in rows:
                self.request_log.add(words, tags, record, model.info["name"], model.info["version"])

    def __del__(self) -> None:
        if getattr(self, "request_log", None) is not None:
            self.request_log.flush()  # type: ignore[union-attr]


def build_app(args: dict[str, Any]) -> serve.Application:
    """The application ``serve deploy`` builds from ``drml serve --build``'s file (``args``: limits, threads)."""
    return NerServer.bind(args.get("limits", {}), int(args.get("threads", 1)))  # RAY
