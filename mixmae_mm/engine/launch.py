# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Launch helpers shared by tools/train.py and tools/test.py."""
import torch
import torch.distributed as dist


def setup_cpu_distributed(cfg) -> None:
    """Let ``--launcher pytorch`` run on machines without a GPU.

    mmengine 0.10.7's ``init_dist('pytorch')`` calls
    ``torch.cuda.set_device`` (fails without CUDA) but skips its own
    initialisation when a process group exists, and DDP rejects
    ``device_ids`` for CPU modules. On a CPU-only machine this creates the
    process group from torchrun's environment with the config's backend
    (``env_cfg.dist_cfg.backend``; gloo if it names nccl or nothing) and
    makes the model wrapper use ``device_ids=None``. Nothing changes when
    CUDA is available or the launcher is not ``pytorch``.

    Args:
        cfg (mmengine.Config): The merged config (``cfg.launcher`` set).
    """
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    if backend in (None, 'nccl'):
        backend = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
