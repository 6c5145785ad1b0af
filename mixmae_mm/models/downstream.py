# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Registration of the mmdet and mmseg classes of this project (the
compilable detectors and segmentor), which need those packages."""
import importlib.util
import warnings
from importlib import import_module

#: package -> this project's module of classes for it
DOWNSTREAM = dict(mmdet='detectors', mmseg='segmentors')


def register_downstream_classes() -> None:
    """Import :mod:`.detectors` / :mod:`.segmentors` where mmdet / mmseg
    import, so that ``import mixmae_mm`` (a config's ``custom_imports``)
    registers ``CompilableMaskRCNN`` & co. into their registries.

    Not installed: nothing to register. Installed but not importable (e.g.
    mmcv without its compiled ops, or an mmcv version mmdet refuses): a
    warning naming the error, and ``import mixmae_mm`` goes on.
    """
    for pkg, module in DOWNSTREAM.items():
        if importlib.util.find_spec(pkg) is None:
            continue
        try:
            import_module(f'{pkg}.models')
        except Exception as e:  # whatever the package raises on import
            warnings.warn(
                f'{pkg} is installed but does not import ({e!r}): '
                f"mixmae_mm's {pkg} classes (Compilable*) are not registered")
            continue
        import_module(f'.{module}', __package__)


__all__ = ['register_downstream_classes']
