"""The FastAPI app: the Recommender's capabilities as HTTP endpoints with an OpenAPI schema.

    app = create_app(Recommender.from_config("deploy.toml"))   # uvicorn.run(app)

POST /recommend, /rerank, /explain, /feedback, /chat; GET /health, /version. Bodies are the
pydantic models in schemas.py; typed library errors map to status codes in errors.py.
Endpoints are sync functions (FastAPI runs them in its thread pool) and every Recommender call
goes through ``Service.call`` under the model lock (see service.py for why)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from llmrank import __version__
from llmrank.errors import FeedbackConflictError, LlmrankError, UnknownItemError
from llmrank.serve.errors import FeatureUnavailableError, install_handlers, internal
from llmrank.serve.schemas import (
    MAX_BODY_BYTES,
    ChatItemModel,
    ChatRequestModel,
    ChatResponseModel,
    ErrorModel,
    ExplainRequestModel,
    ExplainResponseModel,
    ExplanationModel,
    FeedbackRequestModel,
    FeedbackResponseModel,
    RecRequestModel,
    RecResponseModel,
    RerankRequestModel,
    ToolCallModel,
)
from llmrank.serve.service import Service

if TYPE_CHECKING:
    from fastapi import FastAPI
    from langchain_core.language_models import BaseChatModel

    from llmrank.recommender import Recommender

API_VERSION = "1"
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorModel, "description": desc} for code, desc in [
        (400, "unparsable request body (e.g. JSON nested too deeply)"),
        (404, "unknown user or item"),
        (409, "conflict: a chat session of another user, a feedback event_id or a "
              "request_id already used for something else"),
        (413, "request body over the server's limit (8 MiB)"),
        (422, "invalid request (validation, empty history, config)"),
        (500, "internal error (message only, never a stack trace)"),
        (501, "not available on this server (missing extra or feature)"),
        (503, "storage or model server unavailable (a locked feedback store, a chat or reranker server that is down): retry later"),
    ]
}


def create_app(recommender: Recommender, *, chat_model: BaseChatModel | None = None,
               max_sessions: int | None = None, title: str = "llmrank") -> FastAPI:
    """Build the app around one Recommender (tests inject a small one). ``chat_model``
    overrides the configured chat model (built lazily on the first /chat otherwise)."""
    from llmrank._optional import require

    require("fastapi", extra="serve")
    from fastapi import FastAPI

    service = Service(recommender, chat_model=chat_model, max_sessions=max_sessions)
    app = FastAPI(title=title, version=__version__,
                  description="LLM recommender: retrieval, one-pass LLM reranking, exploration, chat.")
    app.state.service = service
    install_handlers(app)
    _limit_body(app)
    _routes(app, service)
    return app


def _limit_body(app: FastAPI) -> None:
    """413 for a body whose Content-Length is over MAX_BODY_BYTES, before it is parsed."""
    from fastapi import Request, Response
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def limit(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"error": "HTTPError", "status": 413,
                                 "message": f"request body of {length} bytes is over the limit of "
                                            f"{MAX_BODY_BYTES} bytes"}, status_code=413)
        response: Response = await call_next(request)
        return response


CONFIG_ENV = "LLMRANK_SERVE_CONFIG"


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` with several worker processes: each worker builds
    its own Recommender from the config file named in ``$LLMRANK_SERVE_CONFIG`` (empty = the
    defaults), since a Recommender is never shared across processes."""
    import os

    from llmrank.recommender import Recommender

    return create_app(Recommender.from_config(os.environ.get(CONFIG_ENV) or None))


def _routes(app: FastAPI, service: Service) -> None:
    rec = service.recommender

    @app.post("/recommend", responses=_ERRORS, response_model=RecResponseModel, tags=["recommend"])
    def recommend(body: RecRequestModel) -> RecResponseModel:
        """Retrieve, rerank, explore and (optionally) explain for a user, history or text."""
        resp = service.call(lambda: rec.recommend(body.to_record()))
        return RecResponseModel.from_record(resp)

    @app.post("/rerank", responses=_ERRORS, response_model=RecResponseModel, tags=["recommend"])
    def rerank(body: RerankRequestModel) -> RecResponseModel:
        """Rerank the given candidates (no retrieval)."""
        resp = service.call(lambda: rec.rerank(body.to_record(), body.candidates))
        return RecResponseModel.from_record(resp).note_dropped(body.candidates, rec.dataset.items)

    @app.post("/explain", responses=_ERRORS, response_model=ExplainResponseModel, tags=["recommend"])
    def explain(body: ExplainRequestModel) -> ExplainResponseModel:
        """Grounded explanations for the given items (validated model text or a fallback)."""
        for item_id in body.item_ids:
            rec.dataset.item(item_id)  # UnknownItemError -> 404
        req = RecRequestModel(user_id=body.user_id, history=body.history, text=body.text).to_record()
        exps = service.call(lambda: rec.explain(req, body.item_ids))
        return ExplainResponseModel(explanations=[
            ExplanationModel(item_id=e.item_id, text=e.text, source=e.source) for e in exps])

    @app.post("/feedback", responses=_ERRORS, response_model=FeedbackResponseModel, tags=["feedback"])
    def feedback(body: FeedbackRequestModel) -> FeedbackResponseModel:
        """Store a click, rating or skip; returns once it is durable (the acknowledgement)."""
        from llmrank.feedback.records import FeedbackEvent

        if not rec.dataset.has_item(body.item_id):
            raise UnknownItemError(f"unknown item id {body.item_id!r}")
        if getattr(rec.explore, "feedback", None) is None:
            raise FeatureUnavailableError("this server has no feedback store ([feedback] path in the config)")
        fields: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"user_id"})
        event = FeedbackEvent(user_id=body.user_id, **fields)
        try:
            event_id = service.call(lambda: rec.feedback(event))
        except FeedbackConflictError as exc:
            # event ids are chosen by clients: the store's message describes the stored event
            # (another user's id and item), which is not this client's business
            raise FeedbackConflictError(
                f"event_id {event.event_id!r} is already stored for another event; a different "
                "event needs its own event_id (a retry must resend the same event)") from exc
        return FeedbackResponseModel(event_id=event_id)

    @app.post("/chat", responses=_ERRORS, response_model=ChatResponseModel, tags=["chat"])
    def chat(body: ChatRequestModel) -> ChatResponseModel:
        """One turn of a chat session (a new session when ``session_id`` is absent or unknown)."""
        session = service.sessions.get(body.session_id, body.user_id, body.history)
        try:
            turn = session.send(body.message)
        except LlmrankError:
            raise
        except Exception as exc:
            raise internal(exc) from exc
        return ChatResponseModel(
            session_id=turn.session_id, answer=turn.answer, item_ids=turn.item_ids,
            items=[ChatItemModel(item_id=i, title=turn.titles.get(i, ""), request_id=turn.request_ids.get(i))
                   for i in turn.item_ids],
            tool_calls=[ToolCallModel(name=c.name, args=c.args, ok=c.ok, error=c.error)
                        for c in turn.tool_calls],
            rejected_ids=turn.rejected_ids)

    @app.get("/health", responses={500: _ERRORS[500]}, tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness plus what is loaded: dataset, index, model and adapter, policy, chat."""
        return service.health()

    @app.get("/version", responses={500: _ERRORS[500]}, tags=["service"])
    def version() -> dict[str, Any]:
        """Package, API and prompt-template versions (what produced the responses)."""
        from llmrank.prompts.store import load_template

        templates: dict[str, str | None] = {}
        for name in ("rank", "explain", "chat_system"):
            try:
                templates[name] = load_template(name).version
            except LlmrankError:
                templates[name] = None
        return {"llmrank": __version__, "api": API_VERSION, "python": platform.python_version(),
                "templates": templates}
