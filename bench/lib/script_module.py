"""A bench script (a file without a .py suffix, such as bench/reload) loaded as a module, so another
script reuses its functions instead of a copy of them. Its main() runs only when it is executed,
not here."""
import importlib.machinery
import importlib.util
import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    """bench/NAME as the module bench_NAME."""
    loader = importlib.machinery.SourceFileLoader("bench_" + name, os.path.join(BENCH, name))
    spec = importlib.util.spec_from_loader("bench_" + name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
