"""Typed exceptions. The library raises these; only the CLI, HTTP layer and chat tools turn
them into messages and exit codes."""

from __future__ import annotations


class LlmrankError(Exception):
    """Base class of every error llmrank raises on purpose."""


class ConfigError(LlmrankError):
    """A config file or value is invalid."""


class UnknownBackendError(LlmrankError, KeyError):
    """A registry was asked for a name it does not know; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingExtraError(LlmrankError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class DataError(LlmrankError):
    """Input data cannot be read or is inconsistent."""


class MalformedLineError(DataError):
    """One line of an input file is malformed. Carries the file and the 1-based line number."""

    def __init__(self, path: str, line_no: int, reason: str) -> None:
        self.path = path
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{path}:{line_no}: {reason}")


class InvalidRequestError(DataError, ValueError):
    """A request (or its filters) is malformed: k or n_candidates not a positive integer, an
    empty id or text, a bare string where a set of ids or values belongs (HTTP 422)."""


class DatasetNotFoundError(DataError):
    """A dataset is neither on disk nor downloadable (offline)."""


class UnknownUserError(LlmrankError, KeyError):
    """The user id is not in the dataset and no history was given."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownItemError(LlmrankError, KeyError):
    """An item id is not in the catalog."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EmptyHistoryError(LlmrankError):
    """A request needs a history (or text) and has none."""


class IndexError_(LlmrankError):
    """The vector index is missing, stale or inconsistent with the catalog."""


class PromptError(LlmrankError):
    """A prompt template is missing, malformed or was rendered with wrong inputs."""


class ModelError(LlmrankError):
    """A model cannot be loaded or returned unusable output."""


class ModelUnavailableError(ModelError):
    """A model server could not be reached or kept failing (connection errors, timeouts,
    429 and 5xx after the retries): the request itself was fine and may be retried later."""


class FeedbackError(LlmrankError):
    """A feedback event is invalid or cannot be stored."""


class FeedbackConflictError(FeedbackError):
    """An idempotency key (an impression's request_id, an event's event_id) is already stored
    with other content: a retry is accepted once, a different record under the same key is
    refused, never dropped silently."""
