"""celeryref/reliability/dead_letters"""
