"""Tools around the worker: the embedded stack, ``make run``, the simulator, reading results
back, replay.
"""
