"""``CompilableMaskRCNN`` / ``CompilableRetinaNet`` are mmdet's classes with
another ``loss`` (features extracted there, the heads' losses apart) and
``train_step``: same state dict, same eager update. Their compiled Runner
step is tested in ``tests/test_models/test_compile.py``."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.structures import InstanceData

import mixmae_mm  # noqa: F401  (registers the classes)

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = dict(
    MaskRCNN='configs/mixmae/benchmarks/mmdet/'
    'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py',
    RetinaNet='configs/mixmae/benchmarks/mmdet/'
    'retinanet_pvtv2-tiny-mixmae-pre_fpn_demo_coco.py')


def _cfg(name):
    cfg = Config.fromfile(str(ROOT / CONFIGS[name])).model
    cfg.backbone.init_cfg = None  # no pretrained checkpoint here
    return cfg


def _sample(h, w, boxes, labels):
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
        scale_factor=(1., 1.), batch_input_shape=(h, w)))
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = 1
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32),
        labels=torch.tensor(labels),
        masks=BitmapMasks(masks.numpy(), h, w))
    return sample


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_same_state_dict_and_same_training_step(name,
                                                assert_same_train_step):
    gen = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8,
                              generator=gen) for _ in range(2)],
        data_samples=[
            _sample(96, 128, [[10, 12, 60, 70], [70, 20, 120, 90]], [0, 2]),
            _sample(96, 128, [[30, 30, 90, 80]], [1])
        ])
    assert_same_train_step(MODELS, _cfg(name), name, data)
