"""What each subcommand does, once the CLI has built Settings: the edge where I/O is built (the
aiohttp session, the ledger engine and writer, signal handlers, the live display) and passed in.

- `run.py`: `ingest run`, wiring the steps (`prepare.py`, `upload.py`) into `runner.Runner`;
- `reading.py`: `ingest status`, `ingest export` and `ingest db`;
- `hold.py`: the one-run-per-ledger hold they share.

The CLI imports only the module of the command it runs, so `ingest status` never loads aiohttp.
"""
