"""Helpers for the checkpoint tests: picklable objects whose unpickling
runs code (module-level so that pickle can name them)."""
import builtins
import os


def write_marker(path):
    """What a malicious checkpoint would run on load."""
    with open(path, 'w') as f:
        f.write('pwned')
    return 'pwned'


class ExecPayload:
    """Unpickling calls ``exec`` with code that writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec,
                (f'open({self.marker!r}, "w").write("pwned")', ))


class FunctionPayload:
    """Unpickling calls a function of a (non-blocked) module."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (write_marker, (self.marker, ))


class SystemPayload:
    """Unpickling calls ``os.system``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class GetattrPayload:
    """Unpickling walks ``getattr(getattr, '__self__')`` (the builtins
    module), the first step towards ``exec``."""

    def __reduce__(self):
        return (getattr, (getattr, '__self__'))
