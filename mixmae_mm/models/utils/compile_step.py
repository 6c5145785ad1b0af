# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Training steps that ``torch.compile`` (mmengine's ``compile=True``) can
take: the data preprocessor and the update eager; the loss compiled
(:class:`CompilableTrainStep`), or for detectors and segmentors only the
feature extraction (:class:`CompilableFeatureTrainStep`); the same step for
distributed training (:class:`CompilableDistributedDataParallel`)."""
from typing import Any, Dict, Union

import torch
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.model.wrappers.distributed import detect_anomalous_params
from mmengine.registry import MODEL_WRAPPERS


@torch.compiler.disable
def eager(fn, *args):
    """``fn(*args)``, never traced by ``torch.compile``."""
    return fn(*args)


class CompilableTrainStep:
    """Mixin for an mmengine ``BaseModel``: its ``train_step`` with the
    data preprocessor and the parameter update (backward, optimizer step)
    kept out of ``torch.compile``.

    With ``compile=True`` the Runner compiles ``model.train_step``. Two
    parts must run eagerly: the data preprocessor, since moving the data
    samples deep-copies their metadata (file names, flip flags), on whose
    identity Dynamo would guard and recompile at every batch; and the
    update, since Dynamo (torch 2.14) fails inside the optimizer's ``step``
    (``'UserDefinedDictVariable' object has no attribute 'items'``). The
    loss is one graph and its backward a compiled one. Without compilation
    this is ``BaseModel.train_step``.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper) -> Dict[str, torch.Tensor]:
        with optim_wrapper.optim_context(self):
            data = eager(self.data_preprocessor, data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        eager(optim_wrapper.update_params, parsed_losses)
        return log_vars


class _Features:
    """Features already extracted, handed to a model's own ``loss`` in place
    of its input images (:meth:`CompilableFeatureTrainStep.extract_feat`
    gives them back)."""

    def __init__(self, feats: Any) -> None:
        self.feats = feats


class CompilableFeatureTrainStep(CompilableTrainStep):
    """Mixin for an mmdet detector or mmseg segmentor: the training step of
    :class:`CompilableTrainStep`, and under ``compile=True`` only the
    feature extraction (backbone and neck, ``extract_feat``) of the loss is
    traced; the heads' losses run eagerly.

    The heads are kept out because their shapes depend on the data: the
    number of ground-truth boxes, anchor assignment, sampling, NMS (mmdet
    3.3's Mask R-CNN, traced whole on the demo set: 82 graph breaks in the
    first iteration and new graphs in each of the next ten). The encoders
    and necks have static shapes, or symbolic ones over varied input sizes
    (docs/en/compile.md). The split is in ``loss``, so it holds also where
    the loss is reached through a model wrapper's forward (distributed
    training). Without compilation ``loss`` computes what the model's own
    computes: the heads' losses on the features of ``inputs``.
    """

    def loss(self, inputs, data_samples) -> dict:
        if isinstance(inputs, _Features):
            return super().loss(inputs, data_samples)
        feats = self.extract_feat(inputs)  # traced
        return eager(super().loss, _Features(feats), data_samples)

    def extract_feat(self, inputs):
        """The model's ``extract_feat``; features handed to its ``loss`` by
        :meth:`loss` are passed through."""
        if isinstance(inputs, _Features):
            return inputs.feats
        return super().extract_feat(inputs)


@MODEL_WRAPPERS.register_module()
class CompilableDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` with the training step of
    :class:`CompilableTrainStep`: the data preprocessor and the update kept
    out of ``torch.compile``.

    Distributed, the Runner compiles the wrapper's ``train_step``, not the
    model's, so the model's compilable step is not used: with mmengine's
    wrapper ``compile=True`` fails in the optimizer's ``step`` as in
    :class:`CompilableTrainStep`. Set ``model_wrapper_cfg =
    dict(type='CompilableDistributedDataParallel')`` (this project's
    configs do); without compilation the step is mmengine's.
    """

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper) -> Dict[str, torch.Tensor]:
        with optim_wrapper.optim_context(self):
            data = eager(self.module.data_preprocessor, data, True)
            losses = self._run_forward(data, mode='loss')  # through DDP
        parsed_loss, log_vars = self.module.parse_losses(losses)
        eager(optim_wrapper.update_params, parsed_loss)
        if self.detect_anomalous_params:
            detect_anomalous_params(parsed_loss, model=self)
        return log_vars
