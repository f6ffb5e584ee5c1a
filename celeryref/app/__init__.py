"""celeryref/app"""
