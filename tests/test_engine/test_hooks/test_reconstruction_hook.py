"""MixMAEReconstructionHook in a real (tiny) Runner run."""
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_data import make_imagenet_folder
from mmengine.config import Config
from mmengine.registry import HOOKS, VISBACKENDS
from mmengine.runner import Runner
from mmengine.visualization import BaseVisBackend
from PIL import Image

from mixmae_mm.engine.hooks.reconstruction_hook import \
    MixMAEReconstructionHook
from mixmae_mm.visualization.reconstruction import HEADER, PAD

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

#: (name, shape, step) of every image the recording backend received.
RECORDED = []


@VISBACKENDS.register_module(force=True)
class _RecordingVisBackend(BaseVisBackend):
    """A second backend that remembers what it was given (the real
    TensorBoard route: tests/test_tools/test_tensorboard.py)."""

    @property
    def experiment(self):
        return self

    def _init_env(self):
        pass

    def add_image(self, name, image, step=0, **kwargs):
        RECORDED.append((name, image.shape, step))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet')
    make_imagenet_folder(str(root), num_train=2, num_val=0, size=128)
    return root  # 8 training images


def _cfg(data_root, work_dir, hooks):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = 1  # 2 iterations
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), *hooks]
    cfg.visualizer.vis_backends = [
        dict(type='LocalVisBackend'),
        dict(type='_RecordingVisBackend')
    ]
    return cfg


def _weights(runner):
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def test_registered_in_the_root_registry():
    assert HOOKS.get('MixMAEReconstructionHook') is MixMAEReconstructionHook
    with pytest.raises(ValueError, match='interval'):
        MixMAEReconstructionHook(interval=0)


def test_hook_writes_grids_and_leaves_training_alone(data_root, tmp_path):
    RECORDED.clear()
    hook = dict(type='MixMAEReconstructionHook', interval=1, num_pairs=2)
    runner = Runner.from_cfg(_cfg(data_root, tmp_path / 'with', [hook]))
    runner.train()
    with_hook = _weights(runner)

    pngs = sorted((tmp_path / 'with' / 'reconstructions').iterdir())
    assert [p.name for p in pngs] == ['iter_1.png', 'iter_2.png']
    grid = np.asarray(Image.open(pngs[-1]))
    assert grid.shape == (HEADER + PAD + 2 * (128 + PAD),
                          PAD + 6 * (128 + PAD), 3)
    local = list((tmp_path / 'with').rglob('vis_image/reconstruction_2.png'))
    assert len(local) == 1  # LocalVisBackend
    np.testing.assert_array_equal(np.asarray(Image.open(local[0])), grid)
    assert RECORDED == [('reconstruction', grid.shape, 1),
                        ('reconstruction', grid.shape, 2)]

    # the same run without the hook trains to the same weights (the hook's
    # mask after iteration 1 does not shift iteration 2's random mask)
    runner = Runner.from_cfg(_cfg(data_root, tmp_path / 'without', []))
    runner.train()
    without = _weights(runner)
    assert with_hook.keys() == without.keys()
    for k in with_hook:
        torch.testing.assert_close(with_hook[k], without[k], msg=k)


def test_hook_refuses_models_without_reconstruct():

    class _Runner:
        model = torch.nn.Linear(2, 2)

    with pytest.raises(TypeError, match='MixMAE'):
        MixMAEReconstructionHook().before_train(_Runner())
