"""bench/reload loaded as a module, so bench/run reuses its load clients, wrk parser and reload runs."""
from .script_module import load_script

reload = load_script("reload")
