"""A run's steps and their driver: plan (what an entry needs), prepare (hash, fetch, probe,
link), convert (other formats decoded to WAV in worker threads), upload (one job's attempts),
the runner (queues and stop), the fleet (heartbeats, take over), the tally, and the heap given
back to the system while a run goes on (`heap.py`).

May import `pipeline.core`, `pipeline.sources`, `pipeline.content`, `pipeline.flow` and
`pipeline.ledger`; it talks to HTTP only through the protocols in `run/model.py`.
"""
