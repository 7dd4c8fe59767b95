"""Benchmarks of SPEC section 10: each figure measured beside its physical limit.

Run them all with ``make bench``; each script also runs on its own (``python -m bench.<name>
--help``). Results go to ``var/bench/*.json``; ``python -m bench.report`` turns them into
docs/benchmarks.md and the charts in docs/benchmarks/.
"""
