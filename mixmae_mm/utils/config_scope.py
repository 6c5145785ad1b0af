# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""``mixmae_mm::path/to/config.py`` in mmengine configs.

mmengine 0.10.7 resolves ``pkg::`` config paths (in ``_base_``, and in
``mmengine.hub.get_config``) only for the packages of its ``MODULE2PACKAGE``
table (alias ``PKG2PROJECT``, ``mmengine/config/utils.py``), reading
``<package dir>/.mim/configs/<path>``. :func:`register_config_scope`, called
when ``mixmae_mm`` is imported, makes that work for this package without
changing mmengine's files:

1. adds ``mixmae_mm`` to that table;
2. gives mmengine this package's folder for ``mixmae_mm`` (mmengine's
   ``get_installed_path`` asks ``pkg_resources``, which places an editable
   install in site-packages, where no ``mixmae_mm/.mim`` exists); every other
   package still goes to mmengine's own function;
3. builds what a ``mixmae_mm::`` base config defines in the scope of the
   config that inherits it. mmengine tags the dicts of a ``pkg::`` base with
   ``_scope_=pkg``, but ``mixmae_mm`` is not a registry scope: its modules
   live in mmpretrain's registries and its configs are mmpretrain, mmdet or
   mmseg configs that set their ``default_scope``. A ``mixmae_mm`` tag would
   make mmengine fall back to its root registries, where ``MaskRCNN`` or
   ``UperNet`` do not exist.

A config read before ``mixmae_mm`` is imported (upstream ``tools/train.py``
reads its config first; ``custom_imports`` runs only after the ``_base_``
files have been resolved) still fails with mmengine's ``AssertionError:
mmengine does not support to load mixmae_mm config``: docs/en/get_started.md,
"Using the configs from another project", gives the workaround.
"""
import functools
import importlib
import os.path as osp

PACKAGE = 'mixmae_mm'
PREFIX = PACKAGE + '::'
# mmengine modules that bound ``get_installed_path`` by name at import
_PATH_USERS = ('mmengine.config.config', 'mmengine.hub.hub')


def package_dir() -> str:
    """The folder of the imported ``mixmae_mm`` package (wheel: in
    site-packages; editable: in the checkout)."""
    # mixmae_mm/utils/config_scope.py -> mixmae_mm/
    return osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(cfg_path: str) -> str:
    """The file that ``mixmae_mm::<cfg_path>`` names.

    Args:
        cfg_path (str): ``'mixmae_mm::mixmae/....py'`` or the part after
            ``::``, relative to the package's ``configs/`` folder.

    Returns:
        str: The absolute path under ``<package dir>/.mim/configs``.

    Raises:
        FileNotFoundError: No such config (names what is shipped there).
    """
    rel = cfg_path[len(PREFIX):] if cfg_path.startswith(PREFIX) else cfg_path
    root = osp.join(package_dir(), '.mim', 'configs')
    path = osp.join(root, rel)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{PREFIX}{rel}: no such config in {root} (expected a path like '
            f"'{PREFIX}mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'; "
            f'`mim search {PACKAGE}` lists them)')
    return path


def _with_our_path(get_installed_path):
    """mmengine's ``get_installed_path``, answering for this package."""
    if getattr(get_installed_path, '_mixmae_mm_scope', False):
        return get_installed_path  # already wrapped

    @functools.wraps(get_installed_path)
    def wrapped(package: str) -> str:
        if package == PACKAGE:
            return package_dir()
        return get_installed_path(package)

    wrapped._mixmae_mm_scope = True
    return wrapped


def register_config_scope() -> None:
    """Let mmengine resolve ``mixmae_mm::`` config paths (idempotent)."""
    from mmengine.config import Config
    from mmengine.config.utils import MODULE2PACKAGE

    # 1. the table _get_package_and_cfg_path asserts on (one dict object:
    # PKG2PROJECT is an alias of it)
    MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)

    # 2. this package's folder, also for editable installs
    for name in _PATH_USERS:
        module = importlib.import_module(name)
        module.get_installed_path = _with_our_path(module.get_installed_path)

    # 3. no `_scope_='mixmae_mm'` on the inherited dicts
    original = Config._get_cfg_path
    if getattr(original, '_mixmae_mm_scope', False):
        return

    @functools.wraps(original)
    def _get_cfg_path(cfg_path: str, filename: str):
        path, scope = original(cfg_path, filename)
        return path, (None if scope == PACKAGE else scope)

    _get_cfg_path._mixmae_mm_scope = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
