"""`make bench`: ingest measured side by side with honest references.

Every number comes from the real `ingest` CLI as a subprocess, over loopback, against the
sandbox (`ingest sandbox`), from outside: wall time, CPU and peak RSS from `wait4`, the sandbox's
CPU from /proc. Compared variants run interleaved in the same loop (A, B, A, B, ...) on this
noisy 2-core machine, and medians and ratios are printed. What is measured:

    1. start-up: `ingest --help`, `ingest status` on an empty ledger (hyperfine);
    2. 2,000 small files, 100 ms latency, --concurrency 32: vs the ideal (N x latency /
       concurrency) and `xargs -P 32 curl` posting the same form;
    3. 8,000 small files, no latency, --concurrency 64: vs a bare aiohttp loop (`bare.py`);
    4. first runs of 2,000 and 20,000 files: peak RSS at 10x the files; then reruns of both,
       unchanged, beside `rclone copy` to an up-to-date mirror and `find -printf`: cost per
       extra unchanged file, start-up subtracted;
    5. 12 WAVs of 53 MB, --concurrency 4: vs `xargs -P 4 curl`; peak RSS vs small files;
    6. a 1,000,000-entry ledger: `status` time, `export` rows/s; then a 1,000,000-row manifest
       over it: peak RSS;
    7. a manifest naming one file on many rows: whole-file reads counted with strace; the
       probe's cost per file by kind (`probing.py`); the dry run of a manifest naming 30 files
       on 20,000 rows (rows/s, start-up subtracted) and on 1,000,000 (time, peak RSS)
       (`dry.py`);
    8. flow control (`flow.py`): random slow-downs and faults vs none, a limit on requests a
       second, a limit on requests open at once (answered 1041, and a bare 429), from the
       sandbox's log of requests;
   8b. the network (`network.py`): through tinyproxy on loopback vs direct, over HTTP and over
       HTTPS (CONNECT); the sandbox over HTTPS vs plain HTTP, TLS handshakes counted;
    9. a fleet on one PostgreSQL ledger (`fleet.py`): three runs vs one, one of three killed,
       the ledger's cost per file on PostgreSQL beside SQLite;
   10. buckets (`buckets.py`): 2,000 objects from moto's S3 server vs the same files from a
       folder; a no-op rerun of 20,000 objects (against a canned listing stub, `stub_s3.py`,
       since moto lists ~1,000 keys a second; and end to end against moto for reference);
       peak RSS listing 100,000 vs 10,000 objects.
   11. decoding (`decoding.py`): 40 FLACs of 3 min converted and sent vs `xargs -P 2 ffmpeg`
       converting them, the decoder's CPU per file, two threads vs one; peak RSS converting a
       9-minute 24-bit/96 kHz FLAC vs a 1-minute one.

`python -m tests.bench NAME ...` runs only the sections named (`noisy`, `rate_limit`, `fleet`,
...: the functions listed in `__main__.py`).

Missing tools (curl, rclone, hyperfine, strace) are installed with apt-get when possible
(tinyproxy comes with `.ci/run`); else the row says which reference was skipped and why.
`BENCH_REPEATS=N` sets the repetitions (default 3: then a comparison stops repeating when
another round would pass its time budget, since ingest is slow in places and the machine is
shared); `BENCH_QUICK=1` makes every size about ten times smaller and repeats once. Bench code
is not part of `make test`.

`python -m tests.bench.profiling` profiles the two throughput rows and the rerun row (py-spy, and
in-process counters of thread hops and SQL statements: `counting.py`); see its docstring.
"""
