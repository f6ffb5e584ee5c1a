"""devtools/tasks"""
