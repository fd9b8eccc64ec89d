"""paybridge benchmark harness (issue #7): ``python -m bench`` / ``make bench``.

Starts the service and its baselines as real processes, drives them from a separate load
generator over 127.0.0.1, prints a table and writes ``bench/results.json``. See PERFORMANCE.md.
"""

__all__: list[str] = []
