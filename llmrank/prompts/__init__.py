"""Versioned prompt templates (TOML + Jinja2) with declared, checked inputs and escaping of
untrusted item text. The template files live in the top-level ``prompts/`` folder and ship
inside the wheel as ``llmrank._prompts``."""

from llmrank.prompts.chat import ChatFormatter, ChatMessage, PlainChatFormatter, hf_format_chat
from llmrank.prompts.escape import escape_data
from llmrank.prompts.store import list_templates, load_template, template_dirs
from llmrank.prompts.template import InputSpec, PromptTemplate, RenderedPrompt

__all__ = [
    "ChatFormatter",
    "ChatMessage",
    "InputSpec",
    "PlainChatFormatter",
    "PromptTemplate",
    "RenderedPrompt",
    "escape_data",
    "hf_format_chat",
    "list_templates",
    "load_template",
    "template_dirs",
]
