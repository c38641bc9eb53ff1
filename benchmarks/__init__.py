"""Performance benchmarks: run with ``benchmarks/run``; not part of the test suite."""
