"""Drill tasks (`devtools.tasks.<queue>`): registered only by the fault-suite stack
(EXTRA_TASK_PACKAGES=devtools.tasks).
"""
