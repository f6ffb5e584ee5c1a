"""One failing attempt, decided in one place (task_base): retry, delivery guard, idempotency,
dead letters, error log, circuit breaker, fallback.
"""
