"""The HTTP API of the ``app`` service."""
