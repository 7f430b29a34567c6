"""Benchmarks (not tests): each module prints human-readable figures and one JSON line of results.

python -m e2e.bench            # all of them
python -m e2e.bench.informer   # one
"""
