"""Benchmarks of the gateway against generated county- and national-sized directories.

`python -m bench` (or `make bench`) generates the data in a temporary directory, runs the real
command line in a child process per step, and prints wall time, peak memory and routing
accuracy next to the targets of issue 2.
"""
