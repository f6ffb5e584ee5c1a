"""celeryref/reliability"""
