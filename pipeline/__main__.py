"""`python -m pipeline` is the same as the `ingest` console script."""

from pipeline.cli import console

console()
