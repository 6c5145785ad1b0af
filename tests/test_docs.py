"""The documentation site follows the code: its API reference documents
every module that ``import mixmae_mm`` registers (the registries are the
oracle). Broken links and pages outside the table of contents fail the
docs build itself (tools/ci/build_docs.sh, warnings as errors)."""
import re
from pathlib import Path

from mmengine import registry as mmengine_registry
from mmengine.registry import Registry

import mixmae_mm  # noqa: F401  (registers the modules)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs' / 'en'


def _registries(root):
    yield root
    for child in root._children.values():
        yield from _registries(child)


def _registered_here():
    """Names of the classes and functions of this package in any registry
    under mmengine's root registries (mmpretrain's, mmdet's, ... are their
    children)."""
    found = set()
    roots = [
        r for r in vars(mmengine_registry).values() if isinstance(r, Registry)
    ]
    for root in roots:
        for reg in _registries(root):
            for obj in reg.module_dict.values():
                if getattr(obj, '__module__', '').startswith('mixmae_mm.'):
                    found.add(obj.__name__)
    return found


def _documented():
    text = (DOCS / 'api.md').read_text()
    return {
        path.rsplit('.', 1)[-1]
        for path in re.findall(
            r'^\.\. auto(?:class|function):: (\S+)$', text, flags=re.M)
    }


def test_the_registries_hold_our_modules():
    # the oracle itself must see the modules named in the docs' intro
    assert {'MixMAE', 'MixMAESwin', 'AtomicCheckpointHook',
            'SeededSampler'} <= _registered_here()


def test_api_reference_documents_every_registered_module():
    missing = sorted(_registered_here() - _documented())
    assert not missing, (
        f'registered but not in docs/en/api.md: {missing} (add an '
        '`.. autoclass::` line in an eval-rst block)')
