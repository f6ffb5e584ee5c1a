"""The map-reduce benchmark (`make bench-mapreduce`): one and two worker-cpu against the
reference and the naive variant.
"""
