# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Sphinx configuration of the mixmae_mm documentation (docs/en).

Build: ``bash tools/ci/build_docs.sh`` (warnings are errors there, so a
broken link, reference or docstring fails CI).
"""
import os
import sys

# the checkout first: the API reference documents this tree's code
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
# the version without importing the package (its import needs the stack)
with open(os.path.join(ROOT, 'mixmae_mm', 'version.py')) as f:
    __version__ = f.read().split("'")[1]

project = 'mixmae_mm'
author = 'mixmae_mm contributors'
copyright = '2026, mixmae_mm contributors'  # noqa: A001 (Sphinx's name)
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',  # the Google-style "Args:" docstrings
]
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
# `[text](page.md#a-heading)` links: anchors for headings of levels 1-3
myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence']
# the reference is generated from the docstrings as written (Google style);
# types are left as text, not resolved against torch's or mmengine's docs
# (no network in CI)
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': False, 'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'alabaster'
html_title = f'mixmae_mm {__version__}'
html_static_path = []
