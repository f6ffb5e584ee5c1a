"""Development and test tooling, outside the product: fault drills, the development mail sink,
the compose harness.
"""
