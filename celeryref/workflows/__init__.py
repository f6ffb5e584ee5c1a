"""A durable DAG workflow engine on Celery and Postgres.

* :mod:`~celeryref.workflows.definition`: steps with ``depends_on``, queue, retries,
  timeout; validation (duplicates, unknown dependencies, cycles, unknown tasks).
* :mod:`~celeryref.workflows.registry`: the step-task allowlist, registered workflows.
* :mod:`~celeryref.workflows.builtin`: ``data_processing``, ``conditional_processing``.
* :mod:`~celeryref.workflows.engine`: start, advance on step completion, fail, cancel.
* :mod:`~celeryref.workflows.store`, :mod:`~celeryref.workflows.step_rows`: the SQL
  (``workflow_executions``, ``workflow_steps``).
* :mod:`~celeryref.workflows.step_task`: how a task becomes a step.
* :mod:`~celeryref.workflows.status`: status views and the text tree.

CLI: ``python -m celeryref.workflows start NAME --input '{...}' | status ID | cancel ID``.
"""
