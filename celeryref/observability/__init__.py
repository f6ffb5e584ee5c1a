"""celeryref/observability"""
