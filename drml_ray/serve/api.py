"""The HTTP API's requests and answers, checked without a web framework or Ray (so they test in microseconds).

``POST /v1/predict`` takes ``{"text": "..."}`` or ``{"texts": ["...", ...]}`` (and optionally ``"model"``) and
answers with the records ``drml predict`` prints: ``{"text", "entities": [{"type", "start", "end", "text",
"score"}]}``, one per text, plus the name of the model that served them. Every mistake in a request is a
``RequestError``: an HTTP status and a JSON body naming the field, e.g.
``{"error": {"field": "texts[2]", "message": "blank text: nothing to tag"}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from drml_ray.text import not_text


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``drml serve --max-chars/--max-texts/--max-body``)."""

    max_chars: int = 10_000
    max_texts: int = 256
    max_body: int = 1_000_000


class RequestError(Exception):
    """A request the API refuses: ``status`` and the field at fault."""

    def __init__(self, status: int, field: str, message: str):
        # (a field or model name from the request may hold a lone surrogate, which no UTF-8 answer can carry)
        field, message = (text.encode("utf-8", "backslashreplace").decode("utf-8") for text in (field, message))
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def body(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "message": self.message}}


@dataclass(frozen=True)
class PredictRequest:
    """A checked request: the texts to tag, whether one ``text`` was sent, and the model asked for."""

    texts: list[str]
    single: bool
    model: str | None


class PredictBody(BaseModel):
    """The request body, for the OpenAPI page (the server checks bodies with ``parse_predict``)."""

    text: str | None = Field(
        None, description="One text to tag (give this or texts).", examples=["Angela Merkel visited Paris."]
    )
    texts: list[str] | None = Field(None, description="Several texts to tag in one request.")
    model: str | None = Field(None, description="The model's name (GET /v1/models); default: the first served.")


class Entity(BaseModel):
    type: str
    start: int = Field(description="Character offset: text[start:end] is the entity.")
    end: int
    text: str
    score: float = Field(description="Mean probability of the entity's word tags.")


class Record(BaseModel):
    text: str
    entities: list[Entity]


class PredictAnswer(BaseModel):
    """``{"text"}`` requests get ``entities`` at the top level; ``{"texts"}`` requests get ``results``."""

    model: str = Field(description="The model that served the request, as GET /v1/models names it.")
    version: str = Field(description="The served model folder's identity (changes when a model is swapped).")
    text: str | None = None
    entities: list[Entity] | None = None
    results: list[Record] | None = None


def parse_predict(raw: bytes, limits: Limits) -> PredictRequest:
    """Check a ``/v1/predict`` body; raise ``RequestError`` naming the field at fault."""
    if len(raw) > limits.max_body:
        raise RequestError(413, "body", f"more than {limits.max_body:,} bytes (--max-body)")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, "body", f"not JSON: {err}") from None
    except RecursionError:  # (a body of ~1,000 nested brackets: Python's decoder gives up, which is no bug of ours)
        raise RequestError(400, "body", "JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise RequestError(422, "body", f"a JSON object is expected, not {type(body).__name__}")
    unknown = sorted(set(body) - {"text", "texts", "model"})
    if unknown:
        raise RequestError(422, unknown[0], "unknown field; the fields are text, texts and model")
    if ("text" in body) == ("texts" in body):
        raise RequestError(422, "text", "give exactly one of text or texts")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(422, "model", f"a string is expected, not {type(model).__name__}")
    if "text" in body:
        return PredictRequest([_check_text(body["text"], "text", limits)], True, model)
    texts = body["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, "texts", f"a list of strings is expected, not {type(texts).__name__}")
    if not texts:
        raise RequestError(422, "texts", "empty list: nothing to tag")
    if len(texts) > limits.max_texts:
        raise RequestError(413, "texts", f"{len(texts):,} texts; at most {limits.max_texts:,} a request (--max-texts)")
    return PredictRequest([_check_text(t, f"texts[{i}]", limits) for i, t in enumerate(texts)], False, model)


def _check_text(text: Any, field: str, limits: Limits) -> str:
    if not isinstance(text, str):
        raise RequestError(422, field, f"a string is expected, not {type(text).__name__}")
    if not text.strip():
        raise RequestError(422, field, "blank text: nothing to tag")
    if len(text) > limits.max_chars:
        raise RequestError(413, field, f"{len(text):,} characters; at most {limits.max_chars:,} (--max-chars)")
    problem = not_text(text)
    if problem:
        raise RequestError(422, field, f"{problem}: text is expected")
    return text


def answer(request: PredictRequest, records: list[dict], model: str, version: str) -> dict[str, Any]:
    """The JSON answer to ``request`` from its records (one per text, as ``drml predict`` makes them)."""
    if request.single:
        return {"model": model, "version": version, **records[0]}
    return {"model": model, "version": version, "results": records}
