"""Typed library errors -> HTTP status codes and a JSON body ({error, message, status}).

The mapping is a table, not an if-chain, so a new error type gets its status in one line;
a library error raised from a storage or I/O failure (its ``__cause__``) is a 503 whatever
its type, as the request itself was fine.
Clients never see a stack trace: an unexpected exception is logged with its traceback under
an error id, and the response carries only its type and that id."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from llmrank.errors import (
    ConfigError,
    DataError,
    EmptyHistoryError,
    FeedbackConflictError,
    FeedbackError,
    InvalidRequestError,
    LlmrankError,
    MissingExtraError,
    ModelUnavailableError,
    PromptError,
    UnknownBackendError,
    UnknownItemError,
    UnknownUserError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)


class FeatureUnavailableError(LlmrankError):
    """The server was started without something the endpoint needs (e.g. a feedback store)."""


class SessionConflictError(LlmrankError):
    """A chat session id was reused with a different user id."""


class InternalError(LlmrankError):
    """An unexpected exception, already logged with its traceback; carries a safe message."""


def internal(exc: BaseException) -> InternalError:
    """Log ``exc`` with its traceback under an error id; return the client-safe error."""
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=exc)
    return InternalError(f"internal error ({type(exc).__name__}); see the server log, error id {error_id}")


# first match wins: subclasses before their bases
STATUS: list[tuple[type[BaseException], int]] = [
    (UnknownUserError, 404),
    (UnknownItemError, 404),
    (MissingExtraError, 501),
    (ModelUnavailableError, 503),  # the model server is down or overloaded: retry later
    (FeatureUnavailableError, 501),
    (SessionConflictError, 409),
    (FeedbackConflictError, 409),  # before FeedbackError (422)
    (InvalidRequestError, 422),
    (EmptyHistoryError, 422),
    (ConfigError, 422),
    (PromptError, 422),
    (FeedbackError, 422),
    (UnknownBackendError, 422),
    (DataError, 422),
    (LlmrankError, 500),
]


def status_for(exc: BaseException) -> int:
    if isinstance(exc, LlmrankError) and isinstance(exc.__cause__, (sqlite3.Error, OSError)):
        # the store or a file failed under a valid request (a locked SQLite file, a full
        # disk): the server's trouble, and a client may retry, whatever the error's type
        return 503
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


_SERVER_SIDE = {500: "the server could not answer", 503: "a service the server needs is unavailable; retry later"}


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body for ``exc``. A library error about the request (4xx) or a missing
    feature (501) keeps its message (it was written for users). A server-side failure (500,
    503) says what kind it is, with an error id: its message names the server's own files and
    hosts (a store's path, a model server's address), which stay in the server log."""
    status = status_for(exc)
    if not isinstance(exc, LlmrankError):
        return {"error": "InternalError", "message": str(internal(exc)), "status": 500}
    if isinstance(exc, InternalError) or status not in _SERVER_SIDE:
        return {"error": type(exc).__name__, "message": str(exc), "status": status}
    error_id = uuid.uuid4().hex[:12]
    log.error("request failed (error id %s): %s: %s", error_id, type(exc).__name__, exc, exc_info=exc)
    return {"error": type(exc).__name__, "status": status,
            "message": f"{_SERVER_SIDE[status]} ({type(exc).__name__}); see the server log, error id {error_id}"}


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``: typed errors, request validation, FastAPI's own HTTP
    errors, everything else."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def _typed(request: Request, exc: Exception) -> JSONResponse:
        body = error_body(exc)
        return JSONResponse(body, status_code=body["status"])

    def _validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors]
        return JSONResponse({"error": "ValidationError", "message": "; ".join(parts) or str(exc),
                             "status": 422}, status_code=422)

    def _http(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own errors (unparsable body, unknown path, wrong method) get the same body
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else ""
        return JSONResponse({"error": "HTTPError", "message": str(detail or status), "status": status},
                            status_code=status, headers=getattr(exc, "headers", None))

    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(LlmrankError, _typed)
    app.add_exception_handler(Exception, _typed)
