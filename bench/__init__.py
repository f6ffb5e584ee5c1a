"""Benchmarks of the deployment against plain Celery defaults (issue 8).

``python -m bench [--quick] [--only WORKLOAD ...]`` (``make bench``) brings
up the compose stack as project ``celeryref-bench`` with a baseline worker beside it
(:mod:`.baseline`), runs the workloads of :mod:`.workloads` against both, and writes
``docs/BENCHMARKS.md``, ``docs/benchmarks/bench.json`` and PNG plots (:mod:`.report`).
"""
