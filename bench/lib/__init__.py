"""bench/lib: the parts of bench/run, one job per module (see bench/run's docstring); judge.py (targets,
provenance, --publish) is shared by every bench script."""
import sys


def say(text):
    """Progress for the person running the benchmark, on stderr (stdout is the results table)."""
    print(f"bench/run: {text}", file=sys.stderr, flush=True)
