"""celeryref/alerts"""
