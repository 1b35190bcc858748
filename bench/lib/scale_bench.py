"""bench/scale loaded as a module, so bench/ready reuses its clusterd runner, /proc readers and idle
measurement (section_idle) instead of a second copy of them."""
from .script_module import load_script

scale = load_script("scale")
