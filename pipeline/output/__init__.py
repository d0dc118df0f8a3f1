"""What a person or a collector sees: the end-of-run summary, `status` and export formats, the
live view, log lines and the metrics file.

May import `pipeline.core`, `pipeline.sources` and `pipeline.run` (to read the tally); never
the ledger's machinery or the network.
"""
