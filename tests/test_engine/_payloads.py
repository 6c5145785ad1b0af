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


class BuildOnGlobalPayload:
    """Unpickling sets an attribute on the allowed function
    ``torch._utils._rebuild_tensor_v2`` (BUILD on a global, reached through
    numpy's object-dtype ``scalar``, which returns its argument): a
    process-wide change made with allow-listed globals only."""

    def __reduce__(self):
        import numpy as np
        import torch
        scalar = np.float64(0).__reduce__()[0]
        return (scalar, (np.dtype(object), torch._utils._rebuild_tensor_v2),
                {'pwned': True})
