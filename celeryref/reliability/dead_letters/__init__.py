"""Tasks that failed for good: the store (store.py) and the act of dead-lettering one
(record.py).
"""
