"""devtools/tasks/default"""
