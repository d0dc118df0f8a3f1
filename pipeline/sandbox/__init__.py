"""The local stand-in for the upload API (`ingest sandbox`), generated sample audio, and the
demo (`make demo`). Development tools: nothing of the product imports them.
"""
