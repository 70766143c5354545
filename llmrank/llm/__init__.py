"""LLM backends behind one interface (``llmrank.llm.base.LLM``), picked by name from
``llmrank.registry.llms``: transformers (CPU default, the numerical reference), vllm, openai,
and a fake one for tests. Only the backend modules import torch, transformers or vllm.

Importing this package asks for the passive OpenMP wait policy before any backend loads
torch (unless the environment already sets one): on a shared CPU, spinning torch threads
made inference several times slower (see ``llmrank.llm.cpu_threads``)."""

from llmrank.llm.cpu_threads import prefer_passive_openmp

prefer_passive_openmp()
