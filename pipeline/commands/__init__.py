"""What each subcommand does, once the CLI has built Settings: the composition roots, where I/O
is built (the HTTP session, the ledger engine and writer, signal handlers, the live display) and
passed in.

- `run.py`: `ingest run`, wiring the steps (`run/prepare.py`, `run/upload.py`) into the runner;
- `reading.py`: `ingest status`, `ingest export` and `ingest db`.

The CLI imports only the module of the command it runs, so `ingest status` never loads aiohttp.
May import anything of ours but the CLI and the sandbox.
"""
