"""What operators watch: task metrics, queue depth (the scaling signal), health checks,
progress, logging.
"""
