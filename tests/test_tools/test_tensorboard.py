"""The documented TensorBoard line, for real: a few iterations of the demo
pretraining config through tools/train.py, read back with TensorBoard's own
event reader (scalars and the reconstruction grid)."""
import json
import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from demo_data import make_imagenet_folder
from mmengine.config import Config
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import \
    EventAccumulator

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'
#: The line the docs give (docs/en/tools.md); appended to a config it adds
#: TensorBoard next to the local backend (scalars.json stays for
#: plot_curves.py).
TB_LINE = ("visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
           "dict(type='TensorboardVisBackend')])")


def test_the_line_keeps_the_visualizer_and_adds_tensorboard(tmp_path):
    """Merged into the demo config, the line replaces only the backends: the
    visualizer class and its other settings stay the demo's."""
    base = Config.fromfile(str(DEMO)).visualizer
    config = tmp_path / 'demo_tensorboard.py'
    config.write_text(f'_base_ = {str(DEMO)!r}\n{TB_LINE}\n')
    merged = Config.fromfile(str(config)).visualizer
    assert [b['type'] for b in merged.vis_backends
            ] == ['LocalVisBackend', 'TensorboardVisBackend']
    assert {k: v for k, v in merged.items() if k != 'vis_backends'} == \
        {k: v for k, v in base.items() if k != 'vis_backends'}


@pytest.mark.slow  # one training process, ~20 s
def test_tensorboard_receives_scalars_and_reconstruction_grids(tmp_path):
    # the demo config's hooks: reconstruction grid at index 2 (cfg-options
    # below set its interval by index)
    hooks = Config.fromfile(str(DEMO)).custom_hooks
    assert hooks[2]['type'] == 'MixMAEReconstructionHook'
    data = tmp_path / 'imagenet'
    make_imagenet_folder(str(data), num_train=2, num_val=0, size=128)
    config = tmp_path / 'demo_tensorboard.py'
    config.write_text(f'_base_ = {str(DEMO)!r}\n{TB_LINE}\n')
    work = tmp_path / 'work'
    cmd = [
        sys.executable, 'tools/train.py',
        str(config), '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=2',
        'default_hooks.logger.interval=1', 'default_hooks.checkpoint=None',
        'custom_hooks.2.interval=2'
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]

    # both backends write to {work_dir}/{timestamp}/vis_data
    (vis_data, ) = work.glob('*/vis_data')
    assert len(list(vis_data.glob('events.out.tfevents.*'))) == 1
    events = EventAccumulator(
        str(vis_data), size_guidance={
            'scalars': 0,
            'images': 0
        })  # 0: keep every event
    events.Reload()
    tags = events.Tags()
    assert {'loss', 'lr'} <= set(tags['scalars'])
    assert tags['images'] == ['reconstruction']

    # 8 images, batch 4, 2 epochs: 4 iterations, each logged at its step;
    # the values are those the local backend wrote (TensorBoard keeps
    # float32)
    local = [
        json.loads(line)
        for line in (vis_data / 'scalars.json').read_text().splitlines()
    ]
    for tag in ('loss', 'lr'):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3, 4], tag
        np.testing.assert_allclose([s.value for s in scalars],
                                   [r[tag] for r in local],
                                   rtol=1e-6,
                                   err_msg=tag)
    assert all(s.value > 0 for s in events.Scalars('loss'))

    # the hook's grid at iterations 2 and 4, the same pixels as its PNG
    grids = events.Images('reconstruction')
    assert [g.step for g in grids] == [2, 4]
    png = np.asarray(Image.open(work / 'reconstructions' / 'iter_4.png'))
    assert (grids[-1].height, grids[-1].width) == png.shape[:2]
    decoded = np.asarray(
        Image.open(BytesIO(grids[-1].encoded_image_string)).convert('RGB'))
    np.testing.assert_array_equal(decoded, png)
