# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""A training step that ``torch.compile`` (mmengine's ``compile=True``) can
take: the loss compiled, the data preprocessor and the update eager."""
from typing import Dict, Union

import torch


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
