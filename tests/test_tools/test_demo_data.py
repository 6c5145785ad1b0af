"""The demo COCO and ADE20K sets are read by the real mmdet / mmseg code."""
import json

import numpy as np
import pytest
import torch
from demo_data import (ADE_CLASSES, COCO_CLASSES, make_ade20k,
                       make_coco_instances)
from mmengine.registry import DefaultScope
from PIL import Image

NUM_TRAIN, NUM_VAL = 6, 4
SIZE = (96, 128)  # (H, W), non-square


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    counts = make_coco_instances(
        str(root), num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE, seed=3)
    assert counts['train']['images'] == NUM_TRAIN
    assert counts['val']['images'] == NUM_VAL
    return root, counts


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ade')
    counts = make_ade20k(
        str(root), num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE, seed=3)
    assert counts == {'training': NUM_TRAIN, 'validation': NUM_VAL}
    return root


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob('*') if p.is_file())


# ----------------------------------------------------------------- COCO ----
def test_coco_json_format(coco_root):
    root, counts = coco_root
    for split in ('train', 'val'):
        data = json.loads(
            (root / 'annotations' / f'instances_{split}2017.json').read_text())
        assert set(data) >= {
            'info', 'licenses', 'images', 'annotations', 'categories'
        }
        assert [c['name'] for c in data['categories']] == list(COCO_CLASSES)
        assert [c['id'] for c in data['categories']] == [1, 2, 3]
        assert len(data['images']) == counts[split]['images']
        assert len(data['annotations']) == counts[split]['instances']
        img_ids = {im['id'] for im in data['images']}
        assert len(img_ids) == len(data['images'])
        for im in data['images']:
            assert (im['height'], im['width']) == SIZE
            with Image.open(root / f'{split}2017' / im['file_name']) as f:
                assert f.size == (SIZE[1], SIZE[0]) and f.mode == 'RGB'
        # every image has at least one object
        assert {a['image_id'] for a in data['annotations']} == img_ids
        for a in data['annotations']:
            assert a['iscrowd'] == 0 and a['category_id'] in (1, 2, 3)
            assert len(a['bbox']) == 4 and a['area'] > 0
            seg = a['segmentation']
            assert isinstance(seg, list) and len(seg) >= 1
            assert all(len(p) % 2 == 0 and len(p) >= 6 for p in seg)


def test_coco_masks_match_pixels(coco_root):
    """annToMask is exactly the object's pixels in the image, with area and
    bbox of that mask, and objects are disjoint."""
    from pycocotools.coco import COCO
    root, _ = coco_root
    coco = COCO(str(root / 'annotations' / 'instances_val2017.json'))
    kinds = set()
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        img = np.asarray(
            Image.open(root / 'val2017' / info['file_name']), dtype=float)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        masks = [coco.annToMask(a).astype(bool) for a in anns]
        assert np.sum(masks, axis=0).max() == 1  # no overlap
        for a, m in zip(anns, masks):
            kinds.add(a['category_id'])
            ys, xs = np.nonzero(m)
            assert m.sum() == a['area']
            x, y, w, h = a['bbox']
            assert (x, y,
                    w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                              ys.max() - ys.min() + 1)
            # pixels of the object's colour around it are exactly the mask
            # (a mask off by one pixel misses ~10-20% of its area)
            color = np.median(img[m], axis=0)
            near = np.linalg.norm(img - color, axis=-1) < 40
            x, y, w, h = (int(v) for v in a['bbox'])
            win = (slice(max(0, y - 3),
                         y + h + 3), slice(max(0, x - 3), x + w + 3))
            mismatch = (near[win] != m[win]).sum()
            assert mismatch <= 0.01 * m.sum(), (a['id'], mismatch, m.sum())
    assert len(kinds) >= 2


def test_coco_mmdet_dataset_and_metric(coco_root):
    """mmdet's CocoDataset reads the split; CocoMetric scores the ground
    truth (as loaded by mmdet's pipeline) as predictions at mAP 1.0, and a
    shifted copy below 1.0."""
    from mmdet.evaluation import CocoMetric
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    root, counts = coco_root
    ann_file = 'annotations/instances_val2017.json'
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(
            dict(
                type='CocoDataset',
                data_root=str(root),
                ann_file=ann_file,
                metainfo=dict(classes=COCO_CLASSES),
                data_prefix=dict(img='val2017/'),
                test_mode=True,
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(
                        type='LoadAnnotations', with_bbox=True, with_mask=True)
                ]))
        assert len(dataset) == NUM_VAL
        assert sum(
            len(dataset.get_data_info(i)['instances'])
            for i in range(len(dataset))) == counts['val']['instances']
        samples = [dataset[i] for i in range(len(dataset))]

    def evaluate(shift):
        metric = CocoMetric(
            ann_file=str(root / ann_file), metric=['bbox', 'segm'])
        metric.dataset_meta = dataset.metainfo
        preds = []
        for s in samples:
            assert s['img_shape'] == SIZE
            masks = s['gt_masks'].to_ndarray().astype(bool)
            assert masks.shape == (len(s['gt_bboxes']), *SIZE)
            bboxes = s['gt_bboxes'].tensor.clone() + shift
            preds.append(
                dict(
                    img_id=s['img_id'],
                    ori_shape=s['ori_shape'],
                    pred_instances=dict(
                        bboxes=bboxes,
                        scores=torch.ones(len(bboxes)),
                        labels=torch.as_tensor(s['gt_bboxes_labels']),
                        masks=torch.from_numpy(np.roll(masks, shift,
                                                       axis=2)))))
        metric.process({}, preds)
        return metric.compute_metrics(metric.results)

    res = evaluate(0)
    assert res['bbox_mAP'] == pytest.approx(1.0)
    assert res['segm_mAP'] == pytest.approx(1.0)
    res = evaluate(3)
    assert res['bbox_mAP'] < 0.9 and res['segm_mAP'] < 0.9


# ----------------------------------------------------------------- ADE -----
def test_ade_layout_and_labels(ade_root):
    used = {v[0] for v in ADE_CLASSES.values()}
    from mmseg.datasets import ADE20KDataset
    classes = ADE20KDataset.METAINFO['classes']
    for name, (value, _) in ADE_CLASSES.items():
        assert classes[value - 1].strip() == name
    seen = set()
    for split in ('training', 'validation'):
        imgs = sorted((ade_root / 'images' / split).glob('*.jpg'))
        anns = sorted((ade_root / 'annotations' / split).glob('*.png'))
        assert [p.stem for p in imgs] == [p.stem for p in anns]
        assert len(imgs) == {
            'training': NUM_TRAIN,
            'validation': NUM_VAL
        }[split]
        for p in anns:
            with Image.open(p) as f:
                assert f.mode == 'L' and f.size == (SIZE[1], SIZE[0])
                seg = np.asarray(f)
            values = set(np.unique(seg).tolist())
            assert values <= used | {0}
            assert 0 in values and len(values - {0}) >= 3
            seen |= values
    assert len(seen - {0}) >= 8


def test_ade_colors_follow_classes(ade_root):
    """A nearest-class-mean colour classifier fitted on the training split
    labels most validation pixels right: the images encode the classes."""

    def pixels(split):
        xs, ys = [], []
        for p in sorted((ade_root / 'images' / split).glob('*.jpg')):
            img = np.asarray(Image.open(p), dtype=float).reshape(-1, 3)
            seg = np.asarray(
                Image.open(ade_root / 'annotations' / split /
                           f'{p.stem}.png')).reshape(-1)
            xs.append(img[seg > 0])
            ys.append(seg[seg > 0])
        return np.concatenate(xs), np.concatenate(ys)

    x, y = pixels('training')
    labels = np.unique(y)
    means = np.stack([x[y == v].mean(0) for v in labels])
    xv, yv = pixels('validation')
    pred = labels[np.linalg.norm(xv[:, None] - means[None], axis=-1).argmin(1)]
    assert (pred == yv).mean() > 0.8


def test_ade_mmseg_dataset_and_metric(ade_root):
    """mmseg's ADE20KDataset + LoadAnnotations map 0 -> 255 and v -> v - 1;
    IoUMetric scores the ground truth as prediction at IoU 100 for every
    present class (nan for absent ones)."""
    from mmseg.datasets import ADE20KDataset
    from mmseg.evaluation import IoUMetric
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = ADE20KDataset(
            data_root=str(ade_root),
            data_prefix=dict(
                img_path='images/validation',
                seg_map_path='annotations/validation'),
            pipeline=[dict(type='LoadAnnotations', reduce_zero_label=True)])
        assert len(dataset) == NUM_VAL
        samples = [dataset[i] for i in range(len(dataset))]
    present = set()
    preds = []
    for s in samples:
        assert s['reduce_zero_label'] is True
        raw = np.asarray(Image.open(s['seg_map_path']))
        gt = s['gt_seg_map']
        assert gt.shape == SIZE
        assert (gt[raw == 0] == 255).all()
        assert (gt[raw > 0] == raw[raw > 0] - 1).all()
        present |= set(np.unique(gt).tolist()) - {255}
        t = torch.from_numpy(gt.astype(np.int64))[None]
        preds.append(dict(pred_sem_seg=dict(data=t), gt_sem_seg=dict(data=t)))
    assert present <= {v - 1 for v, _ in ADE_CLASSES.values()}
    assert len(present) >= 5

    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    metric.process({}, preds)
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] == pytest.approx(100.0)
    assert res['aAcc'] == pytest.approx(100.0)
    # per-class IoU: 1 on present classes, nan on absent ones
    inter, union, pred_area, label_area = (
        sum(r) for r in zip(*metric.results))
    iou = IoUMetric.total_area_to_metrics(inter, union, pred_area, label_area,
                                          ['mIoU'])['IoU']
    iou = np.asarray(iou)
    assert np.allclose(iou[sorted(present)], 1.0)
    absent = sorted(set(range(150)) - present)
    assert np.isnan(iou[absent]).all()


# ---------------------------------------------------------- determinism ----
@pytest.mark.parametrize('make', [make_coco_instances, make_ade20k])
def test_same_seed_same_bytes(tmp_path, make):
    for name, seed in (('a', 1), ('b', 1), ('c', 2)):
        make(
            str(tmp_path / name), num_train=2, num_val=2, size=SIZE, seed=seed)
    files = _files(tmp_path / 'a')
    assert len(files) >= 6 and files == _files(tmp_path / 'b')
    for f in files:
        assert (tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' /
                                                     f).read_bytes()
    assert any(
        (tmp_path / 'a' / f).read_bytes() != (tmp_path / 'c' / f).read_bytes()
        for f in files)


# ----------------------------------------------------------- toy shapes ----
def test_toy_shapes_set(tmp_path):
    from demo_data import TOY_CLASSES, make_imagenet_folder
    counts = make_imagenet_folder(
        str(tmp_path / 'a'), num_train=2, num_val=1, size=96,
        classes=TOY_CLASSES, num_unlabelled=5, style='toy', seed=4)
    assert counts == {'train': 16, 'val': 8, 'unlabelled': 5}
    assert len(list((tmp_path / 'a' / 'unlabelled').glob('*.JPEG'))) == 5
    lines = (tmp_path / 'a' / 'meta' / 'train.txt').read_text().split()
    labels = sorted({int(v) for v in lines[1::2]})
    assert labels == list(range(8))
    # the labelled splits do not depend on the unlabelled images
    make_imagenet_folder(
        str(tmp_path / 'b'), num_train=2, num_val=1, size=96,
        classes=TOY_CLASSES, style='toy', seed=4)
    for f in (tmp_path / 'b').rglob('*.JPEG'):
        assert f.read_bytes() == (tmp_path / 'a' /
                                  f.relative_to(tmp_path / 'b')).read_bytes()
    with pytest.raises(ValueError, match='style'):
        make_imagenet_folder(str(tmp_path / 'c'), 1, 1, style='nope')


@pytest.mark.parametrize('kind', ['rings', 'crosses', 'diamonds',
                                  'checkers'])
def test_new_shape_kinds_differ_from_their_look_alikes(kind):
    from demo_data import _draw_shape
    from PIL import ImageDraw
    twin = dict(rings='circles', crosses='squares', diamonds='squares',
                checkers='stripes')[kind]
    masks = []
    for k in (kind, twin):
        img = Image.new('L', (64, 64))
        _draw_shape(ImageDraw.Draw(img), k, (8, 8, 56, 56), 255)
        masks.append(np.asarray(img) > 0)
    assert masks[0].sum() > 100  # something was drawn
    assert (masks[0] != masks[1]).mean() > 0.1


# ------------------------------------------------------ object size/count --
def test_coco_object_radius_and_count(tmp_path):
    """``radius`` sets the objects' size (a shape inscribed in a circle of
    radius r spans 1.7 r to 2 r + 1 pixels), ``max_objects`` their count;
    an impossible range is refused."""
    counts = make_coco_instances(
        str(tmp_path / 'a'), num_train=6, num_val=2, size=(128, 160),
        seed=1, max_objects=1, radius=(0.3, 0.35))
    assert counts['train'] == dict(images=6, instances=6)
    data = json.loads(
        (tmp_path / 'a' / 'annotations' /
         'instances_train2017.json').read_text())
    r_min, r_max = int(0.3 * 128), int(0.35 * 128)
    for a in data['annotations']:
        side = max(a['bbox'][2:])
        assert 1.7 * r_min <= side <= 2 * r_max + 1, a['bbox']
    for bad in ((0.3, 0.2), (0.0, 0.2), (0.2, 0.5)):
        with pytest.raises(ValueError, match='radius'):
            make_coco_instances(
                str(tmp_path / 'b'), 1, 1, radius=bad)
