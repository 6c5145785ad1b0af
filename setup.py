"""Build hooks; the metadata lives in setup.cfg.

The wheel carries ``mixmae_mm/.mim/{configs,tools,model-index.yml}``, the
layout OpenMMLab's packages ship and ``mim`` and mmengine's ``pkg::`` config
lookup read. In the checkout those three are symlinks to the top-level
folders (what an editable install uses, as mmpretrain's ``add_mim_extension``
links them); a wheel gets real copies, made in the build folder only, so a
build never rewrites the checkout (mmpretrain's version replaces the links in
the source tree instead).
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE = 'mixmae_mm'
# top-level paths copied into <package>/.mim of a built wheel
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
# nothing generated travels into the wheel
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


class BuildPyWithMim(build_py):
    """``build_py`` that also copies the .mim items into the build folder."""

    def run(self):
        super().run()
        # an editable install reads the checkout's .mim links directly
        if getattr(self, 'editable_mode', False):
            return
        root = os.path.dirname(os.path.abspath(__file__))
        target = os.path.join(self.build_lib, PACKAGE, '.mim')
        for item in MIM_ITEMS:
            src = os.path.join(root, item)
            if not os.path.exists(src):
                raise FileNotFoundError(
                    f'{src} is missing: a wheel of {PACKAGE} must carry '
                    f'{", ".join(MIM_ITEMS)} (build from the checkout or '
                    'from an sdist made by `python -m build`)')
            dst = os.path.join(target, item)
            # the package copy above may have followed the .mim symlinks
            if os.path.islink(dst) or os.path.isfile(dst):
                os.remove(dst)
            elif os.path.isdir(dst):
                shutil.rmtree(dst)
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=IGNORE)
            else:
                os.makedirs(target, exist_ok=True)
                shutil.copyfile(src, dst)


setup(cmdclass={'build_py': BuildPyWithMim})
