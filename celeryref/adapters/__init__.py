"""celeryref/adapters"""
