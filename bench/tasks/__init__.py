"""Benchmark tasks, one module or package per queue (`bench.tasks.<queue>`): registered only by
the bench stack (EXTRA_TASK_PACKAGES=bench.tasks).
"""
