"""What clients may submit (catalog.py) and how it is submitted and looked up (submit.py),
shared by the API and the CLI.
"""
