"""ingest: upload audio catalogues to the MiniMax music upload API and remember what was done.

Data flows one way: source -> probe/hash -> ledger -> worker -> api -> ledger.
See README.md for the command line and ../shared/STYLE.md for the layout.
"""

__version__ = "0.1.0"
