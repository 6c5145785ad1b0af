"""``CompilableMaskRCNN`` / ``CompilableRetinaNet`` are mmdet's classes with
another ``train_step`` (features extracted before the model's own loss):
same state dict, same eager update. Their compiled Runner step is tested in
``tests/test_models/test_compile.py``."""
import copy
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import mixmae_mm.models.detectors  # noqa: F401  (registers the classes)

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = dict(
    MaskRCNN='configs/mixmae/benchmarks/mmdet/'
    'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py',
    RetinaNet='configs/mixmae/benchmarks/mmdet/'
    'retinanet_pvtv2-tiny-mixmae-pre_fpn_demo_coco.py')


def _pair(name):
    cfg = Config.fromfile(str(ROOT / CONFIGS[name])).model
    cfg.backbone.init_cfg = None  # no pretrained checkpoint here
    cfg.pop('type')
    torch.manual_seed(0)
    ours = MODELS.build(dict(cfg, type=f'Compilable{name}'))
    ours.init_weights()
    theirs = MODELS.build(dict(cfg, type=name))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


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
def test_same_state_dict_and_same_training_step(name):
    ours, theirs = _pair(name)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    gen = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8,
                              generator=gen) for _ in range(2)],
        data_samples=[
            _sample(96, 128, [[10, 12, 60, 70], [70, 20, 120, 90]], [0, 2]),
            _sample(96, 128, [[30, 30, 90, 80]], [1])
        ])
    logs = []
    for model in (ours, theirs):
        model.train()
        wrapper = OptimWrapper(
            torch.optim.AdamW(model.parameters(), lr=1e-3))
        torch.manual_seed(1)  # the heads' samplers draw
        logs.append(model.train_step(copy.deepcopy(data), wrapper))
    assert logs[0].keys() == logs[1].keys()
    for key in logs[0]:
        torch.testing.assert_close(logs[0][key], logs[1][key], rtol=0,
                                   atol=0, msg=key)
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=n)
    # the step changed the weights (the comparison above is not vacuous)
    fresh, _ = _pair(name)
    assert not torch.equal(
        next(fresh.backbone.parameters()), next(ours.backbone.parameters()))
