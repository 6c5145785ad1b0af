"""``CompilableEncoderDecoder`` is mmseg's ``EncoderDecoder`` with another
``loss`` (features extracted there, the heads' losses apart) and
``train_step``: same state dict, same eager update. Its compiled Runner step is tested in
``tests/test_models/test_compile.py``."""
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mixmae_mm  # noqa: F401  (registers the class)

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ('configs/mixmae/benchmarks/mmseg/'
          'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py')


def test_same_state_dict_and_same_training_step(assert_same_train_step):
    cfg = Config.fromfile(str(ROOT / CONFIG)).model
    cfg.backbone.init_cfg = None  # no pretrained checkpoint here
    gen = torch.Generator().manual_seed(0)
    data_samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(
            img_shape=(128, 128), ori_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 150, (1, 128, 128), generator=gen))
        data_samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8,
                              generator=gen) for _ in range(2)],
        data_samples=data_samples)
    assert_same_train_step(MODELS, cfg, 'EncoderDecoder', data)
