"""The ``llmrank`` command line: one module per command group, mounted in ``llmrank.cli.main``.

This file makes ``llmrank.cli`` a regular package, so ``find_packages`` (setup.py) ships it in
the wheel and the ``llmrank`` console script works after a non-editable install."""
