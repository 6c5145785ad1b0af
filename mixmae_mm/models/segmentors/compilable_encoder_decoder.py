# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""mmseg's ``EncoderDecoder`` with a training step ``compile=True`` can take
(segmentation fine-tuning with the compiler)."""
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ..utils.compile_step import CompilableFeatureTrainStep


@MODELS.register_module()
class CompilableEncoderDecoder(CompilableFeatureTrainStep, EncoderDecoder):
    """``EncoderDecoder`` whose ``train_step`` compiles under mmengine's
    ``compile=True`` (:class:`CompilableFeatureTrainStep`: backbone and neck
    traced, decode and auxiliary heads eager); with mmseg's own class the
    compiled step fails inside the optimizer (torch 2.14). Same arguments,
    parameters and state dict as ``EncoderDecoder``."""
