"""celeryref/submission"""
