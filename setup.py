"""Package list for setuptools (everything else is in pyproject.toml).

The prompt templates live in the top-level ``prompts/`` folder (the project layout) and ship inside
the wheel as the data package ``llmrank._prompts``; ``llmrank.prompts.store`` falls back to
the source tree's ``prompts/`` in editable installs, where that package does not exist. The
fine-tuning recipes in ``finetune/`` ship the same way, as ``llmrank._recipes``
(``llmrank.finetune.config.recipe_dirs``)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["llmrank", "llmrank.*"]), "llmrank._prompts",
              "llmrank._recipes"],
    package_dir={"llmrank._prompts": "prompts", "llmrank._recipes": "finetune"},
)
