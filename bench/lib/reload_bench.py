"""bench/reload loaded as a module, so bench/run reuses its load clients, wrk parser and reload runs.

bench/reload is a script without a .py suffix; importlib loads it from its path. Its main() runs
only when it is executed, not here.
"""
import importlib.machinery
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reload")


def _load():
    loader = importlib.machinery.SourceFileLoader("bench_reload", _PATH)
    spec = importlib.util.spec_from_loader("bench_reload", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


reload = _load()
