# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Draw MixMAE reconstructions of the training batch every N iterations."""
import os.path as osp
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mixmae_mm.visualization.reconstruction import (
    render_model_reconstruction, save_png)


@HOOKS.register_module()
class MixMAEReconstructionHook(Hook):
    """Every ``interval`` training iterations, render the reconstruction grid
    of the current batch (image A, image B, mixed input, mask, both
    reconstructions; see :mod:`mixmae_mm.visualization.reconstruction`).

    The grid is written to ``{work_dir}/{out_dir}/iter_{N}.png`` and handed
    to ``runner.visualizer.add_image`` under ``name``, i.e. to every
    configured visualizer backend: ``LocalVisBackend`` writes
    ``{work_dir}/{timestamp}/vis_data/vis_image/{name}_{N}.png``,
    ``TensorboardVisBackend`` (when tensorboard is installed and the backend
    configured) an image summary at step N.

    The mask is drawn with ``seed`` in a forked RNG, so training randomness
    is untouched and successive grids use the same mask (progress is easy to
    compare). Only the main process renders (no collective operations), in
    eval mode and without gradients; the model is put back in train mode.
    Registered in mmengine's root ``HOOKS``, so any scope finds it::

        custom_hooks = [dict(type='MixMAEReconstructionHook', interval=500)]

    Args:
        interval (int): Render every this many iterations. Defaults to 1000.
        num_pairs (int): Rows: the first ``num_pairs`` pairs (i, B-1-i) of
            the batch. Defaults to 1.
        seed (int, optional): Seed of the visualisation mask; None draws it
            from the (forked) current RNG state. Defaults to 0.
        out_dir (str): Folder for the PNG files, relative to the work dir
            unless absolute. Defaults to 'reconstructions'.
        name (str): Image name for the visualizer. Defaults to
            'reconstruction'.
        min_cell (int): Smallest cell side in the picture. Defaults to 128.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1000,
                 num_pairs: int = 1,
                 seed: Optional[int] = 0,
                 out_dir: str = 'reconstructions',
                 name: str = 'reconstruction',
                 min_cell: int = 128) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if num_pairs < 1:
            raise ValueError(f'num_pairs must be >= 1, got {num_pairs}')
        self.interval = interval
        self.num_pairs = num_pairs
        self.seed = seed
        self.out_dir = out_dir
        self.name = name
        self.min_cell = min_cell
        #: Paths of the PNG files written so far.
        self.written: List[str] = []

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        """Fail early, with a clear message, on a model that cannot
        reconstruct."""
        model = self._model(runner)
        if not hasattr(model, 'reconstruct'):
            raise TypeError(
                f'MixMAEReconstructionHook needs a MixMAE model (with '
                f'`reconstruct`), got {type(model).__name__}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Render the grid of ``data_batch`` every ``interval`` iterations.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch in the epoch.
            data_batch (dict, optional): The batch just trained on.
            outputs (dict, optional): Unused.
        """
        if data_batch is None or not self.every_n_train_iters(
                runner, self.interval) or not is_main_process():
            return
        step = runner.iter + 1
        grid = render_model_reconstruction(
            self._model(runner),
            data_batch,
            num_pairs=self.num_pairs,
            seed=self.seed,
            min_cell=self.min_cell)
        path = save_png(
            grid,
            osp.join(runner.work_dir, self.out_dir, f'iter_{step}.png'))
        self.written.append(path)
        runner.visualizer.add_image(self.name, grid, step=step)
        runner.logger.info(f'reconstruction grid written to {path}')


__all__ = ['MixMAEReconstructionHook']
