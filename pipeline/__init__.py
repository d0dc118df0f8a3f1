"""ingest: upload audio catalogues to the MiniMax music upload API and remember what was done.

Data flows one way: source -> probe/hash -> ledger -> worker -> api -> ledger.
README.md describes the command line, the ledger and the layout of this package.
"""

__version__ = "0.1.0"
