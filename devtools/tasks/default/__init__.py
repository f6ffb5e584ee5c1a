"""Drill tasks routed to the `default` queue."""
