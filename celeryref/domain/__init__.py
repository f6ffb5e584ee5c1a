"""celeryref/domain"""
