"""Flow control for the upload pool: backoff policy, circuit breaker, window of requests in
flight, pace, and the parking of jobs waiting out a backoff. Pure models plus small async
holders; no I/O of their own.

May import `pipeline.core` only.
"""
