"""``make bench``: the service measured under load, the way an operator would measure it.

It starts the production stack itself (gunicorn with ``gunicorn.conf.py``, a fresh SQLite or
PostgreSQL database, SimpleCache or Redis), drives it with wrk, and prints one table, also
written to ``bench/RESULTS.md`` with the machine and the exact commands. Not part of
``make test``; ``tests/test_bench_smoke.py`` runs it in ``--quick`` mode so it never rots.
"""
