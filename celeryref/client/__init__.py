"""The command-line client (``python -m celeryref.client``)."""
