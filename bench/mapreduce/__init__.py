"""bench/mapreduce"""
