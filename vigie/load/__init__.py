"""Load: plans (users, duration, mix), the locust driver and its subprocesses, statistics and targets.

Nothing here imports locust: only the driver's own interpreter does (see process.py).
"""
