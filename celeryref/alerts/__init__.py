"""Operator alerts: what an alert is (model), how it is sent (channels), to which channels
(delivery).
"""
