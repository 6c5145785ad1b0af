# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""One layer-wise lr decay constructor for mmpretrain, mmdet and mmseg."""
from typing import Callable, List, Optional, Tuple

from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch import nn


def find_layer_depth_fn(model: nn.Module) -> Callable[[str], Tuple[int, int]]:
    """The ``name -> (layer_id, num_layers)`` function of a model.

    Uses ``model.backbone.get_layer_depth(name, 'backbone.')`` for models
    with a backbone that has one (mmpretrain classifiers and self-supervised
    models, mmdet detectors, mmseg segmentors), or ``model.get_layer_depth``
    for a bare backbone.

    Raises:
        NotImplementedError: If neither exists.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and hasattr(backbone, 'get_layer_depth'):
        return lambda name: backbone.get_layer_depth(name, 'backbone.')
    if hasattr(model, 'get_layer_depth') and backbone is None:
        return model.get_layer_depth
    raise NotImplementedError(
        f'layer-wise lr decay needs `get_layer_depth` on the backbone of '
        f'{type(model).__name__} (e.g. MixMAESwin); got '
        f'{type(backbone).__name__ if backbone is not None else None}')


# Registered in mmengine's root registry so that mmpretrain, mmdet and mmseg
# configs all find it without a scope prefix.
@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MixMAELayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """Layer-wise lr decay for any model whose backbone has
    ``get_layer_depth`` (``MixMAESwin``: official MixMIM grouping).

    mmpretrain's constructor needs ``get_layer_depth`` on the model itself,
    mmdet's only knows ConvNeXt and mmseg's applies ViT ids to any class
    named "*MAE*"; this one asks the backbone, so the same ``paramwise_cfg``
    works in all three. Parameters outside the backbone (neck, heads) get
    the id of the last block, as the official classification head does.

    ``paramwise_cfg`` keys (as mmpretrain's): ``layer_decay_rate``,
    ``flat_decay_mult`` (0. = no weight decay on 1-D parameters, the
    official recipe), ``bias_decay_mult``, ``norm_decay_mult``,
    ``custom_keys`` (``decay_mult`` only).

    Example:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
        ...     constructor='MixMAELayerDecayOptimWrapperConstructor',
        ...     paramwise_cfg=dict(layer_decay_rate=0.7, flat_decay_mult=0.))
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add the parameters of ``module`` to ``params`` (see
        :class:`LearningRateDecayOptimWrapperConstructor`)."""
        if get_layer_depth is None:
            get_layer_depth = find_layer_depth_fn(module)
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
