# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""mmpretrain's ``ImageClassifier`` with a training step the compiler can
take (fine-tuning with ``compile=True``)."""
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ..utils.compile_step import CompilableTrainStep


@MODELS.register_module()
class CompilableImageClassifier(CompilableTrainStep, ImageClassifier):
    """``ImageClassifier`` whose ``train_step`` compiles under mmengine's
    ``compile=True`` (:class:`CompilableTrainStep`): with mmpretrain's own
    class the compiled step fails inside the optimizer (torch 2.14) or
    recompiles at every batch. Same arguments, parameters and state dict as
    ``ImageClassifier``; the fine-tuning configs of this project use it.
    """
