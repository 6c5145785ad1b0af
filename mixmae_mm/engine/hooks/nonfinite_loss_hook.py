# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Stop (or skip the step) when the training loss is NaN or inf."""
import functools

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS

HINT = ('Try a lower learning rate or a longer warm-up, gradient clipping '
        '(optim_wrapper.clip_grad=dict(max_norm=...)), fp32 or bf16 instead '
        'of fp16 AMP, and check the data for broken images; or set '
        "NonFiniteLossHook(action='skip') to skip such steps.")


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Check the loss before every optimizer update; never train on a NaN
    or inf loss silently.

    The check runs *before* the backward pass and the optimizer step (the
    hook wraps ``runner.optim_wrapper.update_params`` in ``before_train``),
    so a bad step never reaches the weights. It works with any
    :class:`OptimWrapper` (``AmpOptimWrapper`` included) and in any registry
    scope (registered in mmengine's root ``HOOKS``). In distributed runs the
    ranks agree (all-reduce of the flag) so that they all raise or all skip.

    Policy:

    * ``action='raise'`` (default): raise ``FloatingPointError`` naming the
      iteration (1-based, as in the log), the epoch, the loss value and a
      hint.
    * ``action='skip'``: skip the update (no backward, no step), log a
      warning with the iteration, count skips in
      ``message_hub`` runtime info ``nonfinite_loss_skips``; raise as above
      after ``max_consecutive_skips`` skipped steps in a row. With gradient
      accumulation a skipped micro-batch is simply left out.

    Args:
        action (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        max_consecutive_skips (int): With ``'skip'``, raise once this many
            steps in a row had a non-finite loss. Defaults to 10.
    """

    priority = 'NORMAL'

    def __init__(self,
                 action: str = 'raise',
                 max_consecutive_skips: int = 10) -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(
                f"NonFiniteLossHook action must be 'raise' or 'skip', got "
                f'{action!r}')
        if max_consecutive_skips < 1:
            raise ValueError('max_consecutive_skips must be >= 1, got '
                             f'{max_consecutive_skips}')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self._in_a_row = 0

    def before_train(self, runner) -> None:
        """Wrap the optimizer wrapper's ``update_params``.

        Args:
            runner (Runner): The runner.
        """
        optim_wrapper = runner.optim_wrapper
        if not isinstance(optim_wrapper, OptimWrapper):
            raise TypeError(
                'NonFiniteLossHook needs a single OptimWrapper, got '
                f'{type(optim_wrapper).__name__}')
        if getattr(optim_wrapper.update_params, '_nonfinite_checked', False):
            return
        original = optim_wrapper.update_params

        @functools.wraps(original)
        def update_params(loss: torch.Tensor, *args, **kwargs):
            if self._is_finite(loss):
                self._in_a_row = 0
                return original(loss, *args, **kwargs)
            return self._handle(runner, loss)

        update_params._nonfinite_checked = True
        optim_wrapper.update_params = update_params

    @staticmethod
    def _is_finite(loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
        if is_distributed():
            all_reduce(bad, op='sum')
        return not bool(bad.item())

    def _message(self, runner, loss: torch.Tensor, extra: str = '') -> str:
        value = loss.detach().float().flatten()[:4].tolist()
        value = value[0] if len(value) == 1 else value
        return (f'Non-finite loss ({value}) at iteration {runner.iter + 1} '
                f'(epoch {runner.epoch + 1}){extra}. {HINT}')

    def _handle(self, runner, loss: torch.Tensor) -> None:
        if self.action == 'raise':
            raise FloatingPointError(self._message(runner, loss))
        self._in_a_row += 1
        total = runner.message_hub.get_info('nonfinite_loss_skips', 0) + 1
        runner.message_hub.update_info('nonfinite_loss_skips', total)
        if self._in_a_row >= self.max_consecutive_skips:
            raise FloatingPointError(
                self._message(
                    runner, loss, f', {self._in_a_row} steps in a row '
                    f'(max_consecutive_skips={self.max_consecutive_skips})'))
        runner.logger.warning(
            self._message(runner, loss,
                          f': skipped this update ({total} skipped so far)'))
