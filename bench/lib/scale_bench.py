"""bench/scale loaded as a module, so bench/ready reuses its clusterd runner, /proc readers and idle
measurement (section_idle) instead of a second copy of them.

bench/scale is a script without a .py suffix; importlib loads it from its path, as reload_bench.py
does for bench/reload. Its main() runs only when it is executed, not here.
"""
import importlib.machinery
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scale")


def _load():
    loader = importlib.machinery.SourceFileLoader("bench_scale", _PATH)
    spec = importlib.util.spec_from_loader("bench_scale", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


scale = _load()
