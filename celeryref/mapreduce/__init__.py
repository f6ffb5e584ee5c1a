"""Distributed map-reduce over Postgres datasets (SPEC F8).

A dataset is ``n`` items with dense indexes ``0..n-1`` in ``dataset_items``
(:mod:`.generate` makes realistic ones). A job splits them into half-open ranges
``[start, end)`` (:mod:`.planning`), runs one ``map_partition`` task per range on
the ``cpu_intensive`` queue, and reduces with a chord (:mod:`.jobs`,
:mod:`celeryref.tasks.cpu_intensive.mapreduce`). A map task streams its range from
Postgres (never the whole range in memory), folds it into a small partial
aggregate (:mod:`.functions`) and upserts that partial into ``mapreduce_partials``
(:mod:`.store`); only a reference to it travels through the broker. The reducer
reads the partials back, combines them and stores the result in
``processing_results``.

Results are exact and independent of how the dataset was partitioned: counts are
integers and sums are exact fixed-point integers (:mod:`.exact`), so ``combine``
is associative and commutative and a distributed run equals the single-process
reference (:mod:`.reference`) bit for bit.

User expressions (calculated fields, rules, group keys) go through a safe
evaluator (:mod:`.expressions`), never ``eval``. ``python -m celeryref.mapreduce``
starts jobs and shows their status; :mod:`.bench` measures it all against the
running stack.
"""
