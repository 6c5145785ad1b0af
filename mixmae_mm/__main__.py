# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""``python -m mixmae_mm SCRIPT [ARGS...]``: run a script with mixmae_mm
imported first.

For upstream tools that read a config which inherits ``mixmae_mm::`` configs,
e.g. mmdet's ``tools/train.py``: they read the config before anything imports
``mixmae_mm``, and mmengine resolves ``_base_`` before it runs the config's
``custom_imports``, so without this the read stops at ``mmengine does not
support to load mixmae_mm config``. The script runs as ``__main__`` with
``sys.argv`` set to ``[SCRIPT, ARGS...]`` and its folder first on
``sys.path``, as ``python SCRIPT ARGS...`` would run it.
"""
import os.path as osp
import runpy
import sys

import mixmae_mm  # noqa: F401  (registers modules and the config scope)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip())
        raise SystemExit(0 if argv else 2)
    script = argv[0]
    if not osp.isfile(script):
        raise SystemExit(
            f'python -m mixmae_mm: {script!r} is not a file (expected the '
            'path of a Python script, e.g. mmdet/.mim/tools/train.py, '
            'followed by its arguments)')
    sys.argv = argv
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
