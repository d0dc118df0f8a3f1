"""What every step shares: the error tree, exit codes, states, the secret type, file names, the
entry record, the ledger's records as values and the stop request.

Imports nothing of ours outside `pipeline.core`, and no third-party library.
"""
