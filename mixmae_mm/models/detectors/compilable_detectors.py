# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""mmdet's detectors with a training step ``compile=True`` can take
(detection fine-tuning with the compiler)."""
from mmdet.models.detectors import MaskRCNN, RetinaNet
from mmdet.registry import MODELS

from ..utils.compile_step import CompilableFeatureTrainStep


@MODELS.register_module()
class CompilableMaskRCNN(CompilableFeatureTrainStep, MaskRCNN):
    """``MaskRCNN`` whose ``train_step`` compiles under mmengine's
    ``compile=True`` (:class:`CompilableFeatureTrainStep`: backbone and neck
    traced, heads eager); with mmdet's own class the compiled step fails
    inside the optimizer (torch 2.14). Same arguments, parameters and state
    dict as ``MaskRCNN``."""


@MODELS.register_module()
class CompilableRetinaNet(CompilableFeatureTrainStep, RetinaNet):
    """``RetinaNet`` with the training step of :class:`CompilableMaskRCNN`.
    """
