"""`python -m pipeline` is the same as the `ingest` console script."""

from pipeline.cli import main

raise SystemExit(main())
