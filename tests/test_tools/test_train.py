"""One real pretraining run through tools/train.py and mmengine's Runner."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from demo_data import make_imagenet_folder

ROOT = Path(__file__).resolve().parents[2]
DEMO = 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'


def test_demo_data_is_deterministic(tmp_path):
    a = make_imagenet_folder(str(tmp_path / 'a'), 2, 1, size=64, seed=1)
    make_imagenet_folder(str(tmp_path / 'b'), 2, 1, size=64, seed=1)
    assert a == {'train': 8, 'val': 4}
    files = sorted(p.relative_to(tmp_path / 'a')
                   for p in (tmp_path / 'a').rglob('*.JPEG'))
    assert len(files) == 12
    for f in files:
        assert (tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' /
                                                     f).read_bytes()


def test_train_demo_config_iterations(tmp_path):
    data = tmp_path / 'imagenet'
    make_imagenet_folder(str(data), num_train=8, num_val=1, size=128)
    work = tmp_path / 'work'
    cmd = [
        sys.executable, 'tools/train.py', DEMO, '--work-dir',
        str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1'
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = work / 'epoch_1.pth'
    assert ckpt.exists()
    assert (work / 'last_checkpoint').read_text().strip().endswith(
        'epoch_1.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    sd = state['state_dict']
    assert 'neck.mask_token' in sd and 'backbone.norm3.weight' in sd
    assert state['meta']['iter'] == 8  # 32 images / batch 4
    logs = sorted(work.rglob('vis_data/scalars.json'))
    assert logs, 'no scalar log written'
    losses = [json.loads(line)['loss'] for line in logs[0].read_text()
              .splitlines() if 'loss' in line]
    assert len(losses) == 8 and all(v > 0 for v in losses)
