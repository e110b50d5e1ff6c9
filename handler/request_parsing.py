"""What the news_cnn handler accepts: request parsing, validation and the handler's settings.

Kept apart from handler.py because TorchServe requires the handler module to define exactly
one class. The archive ships this file beside handler.py (both at the archive's root).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from model.predictor import EncodedBatch

# Defaults for model-config.yaml's `handler:` section (see HandlerSettings).
DEFAULT_MAX_CHARS = 1000  # AG News titles are under 300 characters
DEFAULT_MAX_TEXTS = 64
# One intra-op thread per worker: the model is tiny (one request costs well under a
# millisecond), so threads would mostly synchronise, and on a 2-core box the Java frontend
# plus 2 workers already fill the cores. Scale with workers, not threads.
DEFAULT_NUM_THREADS = 1
THREADS_ENV = "NEWS_CNN_NUM_THREADS"  # overrides model-config.yaml for quick experiments
# Set by the request envelope TorchServe wraps the handler in (KServe's runtime sets it).
ENVELOPE_ENV = "TS_SERVICE_ENVELOPE"

# A client's id for one request, echoed in the answer's headers (also on 4xx answers). A
# client on a keep-alive connection compares it with what it sent: TorchServe 0.12 can send a
# request's answer twice after a scale-down, and the copy then reads as the answer to the
# connection's next request (README, "Reliability").
CORRELATION_HEADER = "X-Correlation-Id"
# Visible ASCII only: the value goes back into a response header as it came.
_CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,128}")

PHRASES = {400: "Bad Request", 413: "Payload Too Large", 500: "Internal Server Error",
           501: "Not Implemented"}
# Why a request has no body, and what to send instead.
EMPTY_BODY = ("the request has no body: POST a headline as Content-Type: text/plain, or JSON "
              "{\"text\": ...} / {\"texts\": [...]} with Content-Type: application/json (GET and "
              "DELETE carry no body; a form-encoded body, e.g. curl -d without a Content-Type "
              "header, arrives empty)")
# The message of every `invalid_json` refusal: a JSON body that is not an object.
NOT_AN_OBJECT = "a JSON body must be an object {\"text\": \"...\"} or {\"texts\": [\"...\", ...]}"


class RequestError(Exception):
    """A request the handler refuses: HTTP status, a short error code, a message for people,
    and for a refusal about one headline of `texts`, that headline's index."""

    def __init__(self, status: int, error: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.index = status, error, message, index

    def body(self) -> dict:
        """The JSON answer the client gets: {"error": code, "message": text[, "index": i]}."""
        body = {"error": self.error, "message": self.message}
        if self.index is not None:
            body["index"] = self.index
        return body


@dataclass
class HandlerSettings:
    """The handler's knobs, read from model-config.yaml's `handler:` section."""

    max_chars: int = DEFAULT_MAX_CHARS
    max_texts: int = DEFAULT_MAX_TEXTS
    num_threads: int = DEFAULT_NUM_THREADS
    # The request envelope TorchServe wraps the handler in (KServe's runtime sets
    # TS_SERVICE_ENVELOPE); empty when requests come straight from TorchServe's REST API.
    envelope: str = ""

    @classmethod
    def from_yaml_config(cls, config: dict | None, environ: dict | None = None) -> HandlerSettings:
        """Settings from the archive's model-config.yaml (the `handler` section) and env."""
        section = dict((config or {}).get("handler") or {})
        environ = os.environ if environ is None else environ
        settings = cls(
            max_chars=int(section.get("max_chars", DEFAULT_MAX_CHARS)),
            max_texts=int(section.get("max_texts", DEFAULT_MAX_TEXTS)),
            num_threads=int(environ.get(THREADS_ENV) or section.get("num_threads", DEFAULT_NUM_THREADS)),
            envelope=environ.get(ENVELOPE_ENV, ""),
        )
        if min(settings.max_chars, settings.max_texts, settings.num_threads) < 1:
            raise ValueError(f"handler settings must be positive: {settings}")
        return settings


def choose_device(gpu_id: int | str | None) -> torch.device:
    """`cuda:<gpu_id>` when TorchServe assigned a GPU and CUDA works here, else the CPU."""
    if gpu_id is not None and str(gpu_id) != "" and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


@dataclass
class ParsedRequest:
    """One request of the batch after parsing: its headlines, or the reason it is refused."""

    texts: list[str] = field(default_factory=list)
    as_list: bool = False  # {"texts": [...]} answers with a list
    explain: bool = False
    describe: bool = False
    error: RequestError | None = None
    first_row: int = 0  # where its headlines start in the batch's one tensor


@dataclass
class PreparedBatch:
    """What preprocess hands to inference: per-request parses and the encoded headlines."""

    requests: list[ParsedRequest]
    encoded: EncodedBatch | None  # None when no request of the batch had a valid headline
    probabilities: torch.Tensor | None = None


def _is_json(content_type: str | None) -> bool:
    return bool(content_type) and "json" in content_type.lower()


def is_empty(value: Any) -> bool:
    """Whether a request body (as `request_body` returns it) is absent or has no bytes."""
    return value is None or (isinstance(value, (str, bytes, bytearray)) and len(value) == 0)


def parse_body(value: Any, content_type: str | None, settings: HandlerSettings) -> tuple[list[str], bool]:
    """Turn one request body into (headlines, answer-as-list), or raise RequestError.

    TorchServe has already decoded JSON bodies into Python objects and text/* bodies into
    str when it could; what it could not decode arrives as bytes and is diagnosed here.
    """
    if is_empty(value):
        # GET and DELETE land here too: TorchServe 0.12 hands the handler the body and
        # headers of a request, never its method.
        raise RequestError(400, "empty_body", EMPTY_BODY)
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise RequestError(400, "invalid_utf8", f"the body is not valid UTF-8 ({err.reason} "
                               f"at byte {err.start}): encode the text as UTF-8") from None
        if _is_json(content_type):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as err:
                raise RequestError(400, "malformed_json", f"the body is not valid JSON: {err}") from None
        elif value.lstrip().startswith("{"):
            # An unlabelled body that looks like a JSON object is parsed as one, so
            # `curl -d '{"text": ...}'` without a content type still works.
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                pass
    if isinstance(value, str) and _is_json(content_type):
        # A JSON body that is a bare string (decoded by TorchServe or just above): not an object.
        raise RequestError(400, "invalid_json", NOT_AN_OBJECT)
    if isinstance(value, str):
        return [_check_text(value, settings)], False
    if not isinstance(value, dict):
        raise RequestError(400, "invalid_json", NOT_AN_OBJECT)
    if "text" in value and "texts" in value:
        raise RequestError(400, "text_and_texts", "the JSON object has both \"text\" and \"texts\": "
                           "send one headline as \"text\" or several as \"texts\", not both")
    if "text" not in value and "texts" not in value:
        raise RequestError(400, "missing_text", "the JSON object needs one of the keys \"text\" "
                           "(one headline) or \"texts\" (a list of headlines)")
    if "text" in value:
        if not isinstance(value["text"], str):
            raise RequestError(400, "invalid_text", "\"text\" must be a string")
        return [_check_text(value["text"], settings)], False
    texts = value["texts"]
    if not isinstance(texts, list):
        raise RequestError(400, "invalid_texts", f"\"texts\" must be a list of strings, not "
                           f"{_json_type(texts)}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, "invalid_texts", f"texts[{index}] is {_json_type(text)}, not a "
                               f"string: \"texts\" must be a list of strings", index)
    if not texts:
        raise RequestError(400, "empty_texts", "\"texts\" is empty: send at least one headline")
    if len(texts) > settings.max_texts:
        raise RequestError(413, "too_many_texts", f"{len(texts)} headlines in one request; the "
                           f"limit is {settings.max_texts}: split them over several requests")
    return [_check_text(t, settings, i) for i, t in enumerate(texts)], True


def check_correlation_id(value: Any) -> str | None:
    """The CORRELATION_HEADER value to echo (None when absent), or RequestError."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CORRELATION_ID.fullmatch(value):
        raise RequestError(400, "invalid_correlation_id", f"{CORRELATION_HEADER} must be 1 to "
                           "128 visible ASCII characters (no spaces)")
    return value


def _check_text(text: str, settings: HandlerSettings, index: int | None = None) -> str:
    """`text` itself if it is non-blank and within max_chars; `index` names it in a list."""
    where = "the headline" if index is None else f"texts[{index}]"
    if not text.strip():
        raise RequestError(400, "empty_text", f"{where} is empty or only whitespace", index)
    if len(text) > settings.max_chars:
        raise RequestError(413, "text_too_long", f"{where} has {len(text)} characters; the "
                           f"limit is {settings.max_chars}", index)
    return text


def _json_type(value: Any) -> str:
    """How JSON calls the type of a decoded value, with its article: "a number", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def request_body(row: Any) -> Any:
    """The body of one request as TorchServe passes it ({"body": ...} or {"data": ...})."""
    if not isinstance(row, dict):
        return row
    for key in ("body", "data"):
        if key in row and row[key] is not None:
            return row[key]
    if row:  # a form body: TorchServe split it into fields, none named body/data
        raise RequestError(400, "unsupported_body", "form-encoded bodies are not accepted: send "
                           "Content-Type: text/plain or application/json")
    return None


