# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Safe checkpoint loading on every mmengine load path (mmengine 0.10.7).

The loads themselves are restricted by
:func:`~mixmae_mm.engine.safe_unpickler.safe_torch_load` (an explicit
allow-list, see :mod:`mixmae_mm.engine.safe_unpickler` and
:mod:`mixmae_mm.engine.safe_globals`); this module routes mmengine's and
torch's loads through it.

Where: importing this module (``import mixmae_mm`` does) re-registers
mmengine's checkpoint schemes:

* ``''`` (local files): :func:`load_from_local`, which replaces mmengine's
  loader of the same name (also rebound as
  ``mmengine.runner.checkpoint.load_from_local``). The empty prefix is the
  fall-back scheme: ``CheckpointLoader._get_checkpoint_loader`` tries the
  registered prefixes as regular expressions in reverse lexicographic order,
  and ``''`` sorts last, so every path that matches no URL scheme is local.
* every other scheme, registered at import time (``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``pavi://``,
  ``s3://``...) or later (``CheckpointLoader._get_checkpoint_loader``, the
  lookup ``CheckpointLoader.load_checkpoint`` uses, wraps whatever loader
  it finds): the loader runs inside :func:`safe_load_context`,
  in which ``torch.load`` calls of the same thread (mmengine's and
  ``torch.hub.load_state_dict_from_url``'s, which passes
  ``weights_only=False``) go through :func:`safe_torch_load`. For this,
  ``torch.load`` is replaced, on first use of the context, by a dispatcher
  that calls the original unless the calling thread is inside the context
  (loaders that bound ``from torch import load`` earlier, or that read
  files without ``torch.load`` (e.g. ``pickle.load``), are not covered;
  mmengine's and ``torch.hub``'s look ``torch.load`` up at call time).

All of ``Runner.resume``, ``Runner.load_checkpoint`` (``load_from``),
``mmengine.runner.load_checkpoint`` (``init_cfg`` ``Pretrained``, with or
without ``prefix=``) and mmdet / mmseg backbones that call
``CheckpointLoader`` or ``_load_checkpoint`` pass through these schemes,
whatever the registry scope, as soon as ``mixmae_mm`` is imported (e.g. by
``custom_imports``).
"""
import contextlib
import functools
import os
import os.path as osp
import pickle
import threading
from typing import Any, Callable, Iterator, List

import torch
from mmengine.runner import checkpoint as mme_ckpt
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_globals import trust_checkpoint_globals
from .safe_unpickler import (UnsafeCheckpointError, _explain, _restricted_load,
                             safe_torch_load)

_local = threading.local()
_install_lock = threading.Lock()


def _context_sources() -> List[str]:
    """This thread's open :func:`safe_load_context` blocks (their
    sources, innermost last)."""
    if not hasattr(_local, 'sources'):
        _local.sources = []
    return _local.sources


def _torch_load_in_context(f: Any,
                           map_location: Any = None,
                           pickle_module: Any = None,
                           *,
                           weights_only: Any = None,
                           mmap: Any = None,
                           **pickle_load_args: Any) -> Any:
    """What ``torch.load`` does inside :func:`safe_load_context`.

    ``pickle_module``, ``weights_only`` and ``mmap`` are ignored: the load
    is restricted whatever the caller asked (``torch.hub`` passes
    ``weights_only=False``), and it reads an open file, which mmap cannot.
    """
    source = _context_sources()[-1]
    if isinstance(f, (str, os.PathLike)) and os.fspath(f) != source:
        source = f'{source} (file {os.fspath(f)})'
    return _restricted_load(f, map_location, source, pickle_load_args)


def _install_torch_load_dispatch() -> None:
    """Replace ``torch.load`` by a dispatcher that restricts the calls made
    inside :func:`safe_load_context` by the same thread and passes every
    other call to the ``torch.load`` it replaced. (Installed once; a later
    replacement of ``torch.load`` by someone else is wrapped again.)"""
    with _install_lock:
        current = torch.load
        if getattr(current, '_mixmae_dispatch', False):
            return

        @functools.wraps(current)
        def load(*args, **kwargs):
            if _context_sources():
                return _torch_load_in_context(*args, **kwargs)
            return current(*args, **kwargs)

        load._mixmae_dispatch = True
        torch.load = load


@contextlib.contextmanager
def safe_load_context(source: str = 'checkpoint') -> Iterator[None]:
    """Restrict ``torch.load`` calls of this thread inside the block to the
    allow-list and turn refusals into :class:`UnsafeCheckpointError`.

    Calls from other threads are not affected.

    Args:
        source (str): The file or URL, for the error message.

    Yields:
        None
    """
    _install_torch_load_dispatch()
    sources = _context_sources()
    sources.append(str(source))
    try:
        yield
    except pickle.UnpicklingError as e:
        if isinstance(e, UnsafeCheckpointError):
            raise
        raise UnsafeCheckpointError(_explain(source, e, [])) from None
    finally:
        sources.pop()


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file scheme, loading with :func:`safe_torch_load`.

    Args:
        filename (str): Local checkpoint path (``~`` expanded).
        map_location: As in ``torch.load``.

    Returns:
        dict | OrderedDict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _wrap_scheme(loader: Callable) -> Callable:
    """Run an mmengine scheme loader inside :func:`safe_load_context`."""
    if getattr(loader, '_mixmae_safe', False):
        return loader

    def safe_loader(filename, map_location=None):
        with safe_load_context(filename):
            return loader(filename, map_location)

    safe_loader.__name__ = loader.__name__  # mmengine logs name[10:]
    safe_loader.__doc__ = loader.__doc__
    safe_loader._mixmae_safe = True
    return safe_loader


load_from_local._mixmae_safe = True


def _safe_lookup(lookup: classmethod) -> Callable:
    """``CheckpointLoader._get_checkpoint_loader`` that hands out every
    scheme's loader wrapped by :func:`_wrap_scheme`, also of schemes
    registered after this module was imported (``register_scheme`` or a
    direct entry in ``_schemes``)."""

    def get_checkpoint_loader(cls, path):
        loader = lookup.__func__(cls, path)
        return loader if loader is None else _wrap_scheme(loader)

    get_checkpoint_loader._mixmae_safe = True
    return get_checkpoint_loader


def register_safe_loaders() -> None:
    """Route every mmengine checkpoint scheme, registered now or later,
    through the allow-list (idempotent; done on ``import mixmae_mm``)."""
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix == '':
            continue
        CheckpointLoader.register_scheme(
            prefixes=prefix, loader=_wrap_scheme(loader), force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    # schemes registered later: wrapped when CheckpointLoader looks them up
    lookup = vars(CheckpointLoader)['_get_checkpoint_loader']
    if not getattr(lookup.__func__, '_mixmae_safe', False):
        CheckpointLoader._get_checkpoint_loader = classmethod(
            _safe_lookup(lookup))
    # direct callers of mmengine.runner.checkpoint.load_from_local
    mme_ckpt.load_from_local = load_from_local


register_safe_loaders()


def apply_checkpoint_trust(cfg) -> None:
    """Honour the config's explicit opt-in for trusted checkpoints.

    ``trusted_checkpoint_globals = ['argparse.Namespace']`` adds these
    globals to the allow-list of every checkpoint load of this run (the
    loads stay restricted; see :mod:`mixmae_mm.engine.safe_globals`). The
    environment variable ``MIXMAE_TRUSTED_GLOBALS`` does the same for any
    tool.

    Args:
        cfg (mmengine.Config): The merged config.
    """
    trusted = cfg.get('trusted_checkpoint_globals', None)
    if trusted:
        trust_checkpoint_globals(
            [trusted] if isinstance(trusted, str) else list(trusted))


__all__ = [
    'apply_checkpoint_trust', 'load_from_local', 'register_safe_loaders',
    'safe_load_context'
]
