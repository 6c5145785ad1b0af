"""``torch.compile`` on the training step: the encoders, the decoder and the
head trace into one graph (``fullgraph=True``: a graph break raises), and
fresh random mix masks, shared or per pair, never recompile it.

The graphs run with a counting backend that executes them as traced
(no code generation: that is the benchmark's job); every new graph is a
compile, so a recompile shows up as a second one. Under compilation the
Swin encoder takes its static-shape path (dense windows,
:mod:`mixmae_mm.models.layers.dense_windows`); a positive control forces
the host-planned cells and shows that they cannot be traced whole.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mixmae_mm.models.layers.dense_windows import force_attention_path
from mixmae_mm.models.layers.mixing import mix_images, sample_mix_mask

STEPS = 50
#: torch 2.1's Dynamo traces the loss paths whole too (``fullgraph=True``)
#: but only with static shapes: its symbolic shapes fail on the window
#: reshapes (``view`` of nested floor divisions), so there ``dynamic=False``
#: and, of the varied-size tests, only PVTv2's (``TORCH21_FAILS``).
DYNAMIC = hasattr(torch.compiler, 'is_compiling')  # torch >= 2.3
OPTIONS = dict(fullgraph=True) if DYNAMIC else dict(fullgraph=True,
                                                   dynamic=False)


class GraphCounter:
    """A ``torch.compile`` backend that runs each traced graph as it is and
    counts the graphs (one per compile or recompile)."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Compiled code is cached per Python function: each test starts and
    leaves with none."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _mixmae(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def _batch(b=4, size=(64, 64), per_pair=False):
    imgs = torch.randn(b, 3, *size)
    mask = sample_mix_mask(
        b, (size[0] // 32, size[1] // 32), 0.5,
        per_pair=per_pair)  # drawn on the host
    return imgs, mix_images(imgs, mask), mask


@pytest.mark.parametrize('per_pair', [False, True], ids=['shared', 'pair'])
@pytest.mark.parametrize('encoder', ['swin', 'pvtv2', 'twins'])
def test_loss_path_compiles_once_for_all_masks(family_mixmae_cfg, encoder,
                                               per_pair):
    model = _mixmae(family_mixmae_cfg(encoder))
    counter = GraphCounter()

    def loss_fn(imgs, mixed, mask):
        return model.loss([imgs, mixed, mask], None)['loss']

    # eager first (the cells path): the reference, and the shape caches
    # filled as an eager call would fill them in a run
    first = _batch(per_pair=per_pair)
    ref = loss_fn(*first)
    compiled = torch.compile(loss_fn, backend=counter, **OPTIONS)
    for step in range(STEPS + 1):
        batch = first if step == 0 else _batch(per_pair=per_pair)
        loss = compiled(*batch)
        loss.backward()
        if step == 0:  # the graph computes what eager code computes
            torch.testing.assert_close(loss, ref)
            graphs = counter.graphs
            assert graphs == 1
    # one graph for every mask: no recompile after the first step
    assert counter.graphs == graphs
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_cells_cannot_be_traced_whole(tiny_mixmae_cfg):
    """Positive control: the host-planned cells (value-dependent shapes,
    ``nonzero``/``tolist`` in the planner) break the graph, which
    ``fullgraph=True`` turns into an error."""
    model = _mixmae(tiny_mixmae_cfg)

    def loss_fn(imgs, mixed, mask):
        return model.loss([imgs, mixed, mask], None)['loss']

    loss_fn(*_batch())  # caches filled: the planner is what breaks
    compiled = torch.compile(loss_fn, backend=GraphCounter(), **OPTIONS)
    with force_attention_path('cells'):
        with pytest.raises(
                Exception,
                match='(?i)unsupported|data.depend|'
                'graph break|dynamic'):
            compiled(*_batch())


@pytest.mark.parametrize('size', [(64, 64), (70, 50)], ids=str)
def test_classifier_compiles_once(tiny_backbone_cfg, size):
    """The plain encoder of classification fine-tuning (no mask; 70 x 50
    pads every stage map): one graph for 50 steps of fresh data."""
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=tiny_backbone_cfg,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=256)))
    model.init_weights()
    counter = GraphCounter()

    def loss_fn(x, y):
        return F.cross_entropy(model(x, mode='tensor'), y)

    first = torch.randn(2, 3, *size), torch.randint(0, 5, (2, ))
    ref = loss_fn(*first)  # eager (cells), caches filled
    compiled = torch.compile(loss_fn, backend=counter, **OPTIONS)
    for step in range(STEPS + 1):
        x, y = first if step == 0 else (torch.randn(2, 3, *size),
                                        torch.randint(0, 5, (2, )))
        loss = compiled(x, y)
        loss.backward()
        if step == 0:
            torch.testing.assert_close(loss, ref)
            graphs = counter.graphs
            assert graphs == 1
    assert counter.graphs == graphs


#: Dense (detection / segmentation) encoders for the varied-size test, all
#: four stages out. Widths keep every convolution input above the element
#: count at which ATen's CPU backend choice changes (20480, seen as a guard
#: on ``_select_conv_backend``: one more graph for the sizes below it; real
#: widths lie above it at every detection size). Swin: the windows of the
#: shipped configs.
DENSE_ENCODERS = dict(
    swin=dict(type='MixMAESwin',
              arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                        num_heads=[1, 1, 2, 2]),
              window_size=(14, 14, 14, 7)),
    pvtv2=dict(type='MixMAEPVTv2',
               arch=dict(embed_dims=16, num_layers=[1, 1, 1, 1],
                         num_heads=[1, 2, 4, 8], mlp_ratios=[2, 2, 2, 2])),
    twins=dict(type='MixMAETwins',
               arch=dict(embed_dims=[16, 32, 64, 128],
                         num_heads=[1, 2, 4, 8], mlp_ratios=[2, 2, 2, 2],
                         depths=[2, 2, 2, 2], window_sizes=[7, 7, 7, 7])),
)


#: Graphs allowed over the 100 sizes: the first size's and the symbolic
#: one (Swin's dense windows branch on padding only where the size is
#: known: ``known_true``; before, each class of sizes whose stage maps need
#: no window padding on one side or both had a graph of its own).
MAX_GRAPHS = 2

#: What torch 2.1's older Dynamo does with these streams (PVTv2 passes).
TORCH21_FAILS = dict(
    swin='its symbolic shapes fail on the window reshapes (a view of nested '
    'floor divisions)',
    twins='it makes a third graph at the third size (673 x 459)')


@pytest.mark.parametrize('encoder', sorted(DENSE_ENCODERS))
def test_dense_encoder_compiles_once_for_100_sizes(encoder):
    """Detection and segmentation feed a new input size with most batches:
    the plain encoder, compiled with Dynamo's default (automatic dynamic
    shapes), makes one graph for the first size and one symbolic graph at
    the second, which then serves the others (mmdet-like sizes, multiples
    of 32 or not; padded windows, overhanging LSA windows and partial
    32-px squares included, and for Swin sizes whose maps need no window
    padding). The symbolic graphs compute what eager code computes."""
    if not DYNAMIC and encoder in TORCH21_FAILS:
        pytest.skip(f'torch 2.1: {TORCH21_FAILS[encoder]}')
    model = MODELS.build(dict(DENSE_ENCODERS[encoder], out_indices=(0, 1,
                                                                    2, 3)))
    model.init_weights()
    model.eval()
    counter = GraphCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    gen = torch.Generator().manual_seed(0)
    sizes = torch.randint(448, 800, (100, 2), generator=gen).tolist()
    # a 32-multiple, one that is not, and for Swin maps that need no
    # window padding (448 = 32 * 14: stage maps 112, 56, 28, 14)
    sizes[:4] = [[480, 480], [512, 800], [673, 459], [448, 448]]
    for i, (h, w) in enumerate(sizes):
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            outs = compiled(x)
            if i < 4 or i % 25 == 0:
                for out, ref in zip(outs, model(x)):
                    torch.testing.assert_close(out, ref, atol=1e-4,
                                               rtol=1e-4)
        assert counter.graphs <= min(i + 1, MAX_GRAPHS), (i, (h,
                                                                       w))


def _runner_graphs(config: str, tmp_path, iters: int = 6,
                   data: str = 'imagenet', overrides=None) -> list:
    """Train ``config`` (relative to the repository) for ``iters``
    iterations on a tiny generated set (``data``: ``'imagenet'``, ``'coco'``
    or ``'ade'``) with mmengine's ``compile`` switch (``backend='eager'``);
    returns the count of graphs made since the start after each
    iteration."""
    import demo_data
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from torch._dynamo.utils import counters

    root = Path(__file__).resolve().parents[2]
    data_root = tmp_path / data
    if data == 'imagenet':
        demo_data.make_imagenet_folder(
            str(data_root), num_train=6, num_val=1, size=128)
    elif data == 'coco':  # images of 8 sizes
        sizes = [(96 + 16 * i, 200 - 12 * i) for i in range(8)]
        demo_data.make_coco_instances(
            str(data_root), num_train=8, num_val=0, sizes=sizes)
    else:
        demo_data.make_ade20k(
            str(data_root / 'ADEChallengeData2016'), 4, 0, size=160)
        data_root = data_root / 'ADEChallengeData2016'
    cfg = Config.fromfile(str(root / config))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': str(data_root),
        'train_dataloader.batch_size': 4 if data == 'imagenet' else 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg': dict(type='IterBasedTrainLoop', max_iters=iters,
                          _delete_=True),
        'param_scheduler': [],
        'custom_hooks': [],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=100),
        # torch 2.1: static shapes (see OPTIONS)
        'compile': dict(backend='eager',
                        **({} if DYNAMIC else dict(dynamic=False))),
        **(overrides or {}),
    })
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg'):
        cfg[key] = None
    cfg.model.backbone.init_cfg = None  # no pretrained checkpoint here
    cfg.work_dir = str(tmp_path / 'work')

    class GraphLog(Hook):

        def __init__(self):
            self.graphs = []

        def after_train_iter(self,
                             runner,
                             batch_idx,
                             data_batch=None,
                             outputs=None):
            self.graphs.append(counters['stats']['unique_graphs'] - start)

    start = counters['stats']['unique_graphs']  # earlier tests' graphs
    log = GraphLog()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(log)
    runner.train()
    assert len(log.graphs) == iters and log.graphs[0] > 0
    return log.graphs


@pytest.mark.slow
def test_runner_compiles_the_demo_config_once(tmp_path):
    """mmengine's ``compile`` switch on the tiny demo pretraining config:
    the Runner's compiled ``train_step`` (``MixMAE.train_step``: the loss
    compiled, the data preprocessor and the update eager) makes its graphs
    in the first iteration and none afterwards, whatever the data samples'
    metadata and the masks."""
    graphs = _runner_graphs(
        'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py',
        tmp_path)
    assert graphs[1:] == [graphs[0]] * 5, graphs


@pytest.mark.slow
def test_runner_compiles_the_finetuning_config(tmp_path):
    """The same switch on the tiny classification fine-tuning config
    (``CompilableImageClassifier``; with mmpretrain's ``ImageClassifier``
    the compiled step fails inside AdamW's ``step`` on torch 2.14). Graphs
    are made in the first two iterations (mmpretrain's ``LabelSmoothLoss``
    sets its ``num_classes`` at its first call, one recompile) and none
    in the next four."""
    graphs = _runner_graphs(
        'configs/mixmae/benchmarks/mmpretrain/'
        'swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py', tmp_path)
    assert graphs[2:] == [graphs[1]] * 4, graphs


@pytest.mark.slow
@pytest.mark.skipif(
    not DYNAMIC, reason='torch 2.1: static shapes (see OPTIONS), a graph '
    'per input size')
def test_runner_compiles_the_detection_config_for_varied_sizes(tmp_path):
    """The same switch on the tiny Mask R-CNN demo config
    (``CompilableMaskRCNN``: backbone and neck compiled, heads eager; with
    mmdet's ``MaskRCNN`` the compiled step fails inside AdamW's ``step``),
    with multi-scale resizing so that every batch has a size of its own
    (padded to 32): three graphs (the first size; the width symbolic; both
    sides symbolic), made in the first iterations, none in the last six.
    Traced whole, mmdet's heads broke the graph 82 times in the first
    iteration and recompiled in each of the next ten. Sides stay above 128
    px: there the last stage is one window (4 squares) wide, and a size-1
    dimension is a class of its own (a contiguity guard; at Swin-B's
    window 7 that is sides up to 224 px, below detection sizes)."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='RandomResize', scale=[(288, 224), (384, 320)],
             keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')
    ]
    graphs = _runner_graphs(
        'configs/mixmae/benchmarks/mmdet/'
        'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py', tmp_path,
        iters=10, data='coco',
        overrides={'train_dataloader.dataset.pipeline': pipeline})
    assert graphs[4:] == [graphs[4]] * 6, graphs
    assert graphs[-1] <= 3, graphs


@pytest.mark.slow
def test_runner_compiles_the_segmentation_config(tmp_path):
    """The switch on the tiny UperNet demo config
    (``CompilableEncoderDecoder``): 128 x 128 crops, graphs made in the
    first iteration and none in the next five."""
    graphs = _runner_graphs(
        'configs/mixmae/benchmarks/mmseg/'
        'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py',
        tmp_path, data='ade')
    assert graphs[1:] == [graphs[0]] * 5, graphs
