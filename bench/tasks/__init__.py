"""bench/tasks"""
