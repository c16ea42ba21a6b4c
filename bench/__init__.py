"""The benchmark behind ``make bench``: the whole pipeline on this machine, figure by figure.

Not part of the installed package; run it with ``python bench/run.py``.
"""
