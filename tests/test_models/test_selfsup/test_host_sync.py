"""No host-device synchronisation in a training step outside the one
per-batch planner (``MixMAESwin.plan_layouts``) of the eager CPU path, none
at all on the static-shape path (compiled or on a GPU), and none in a plain
forward once its layouts are cached.

On a GPU every call that reads a device value into Python (``.item()``,
``bool(t)``, ``nonzero``, ``unique``, bool-mask indexing, ``.cpu()``, ...)
makes the host wait for the device. The tests run on the CPU, where such
calls cost nothing, so they count the calls themselves: a
``TorchFunctionMode`` sees every torch function and tensor method, and the
Python stack tells which package code made the call. Special methods that a
torch release does not route through the mode (torch 2.1: indexing) are
wrapped instead; positive controls check that every kind of call is caught.
"""
import copy
import os
import sys
from typing import List, NamedTuple, Tuple

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import Tensor
from torch.overrides import TorchFunctionMode

import mixmae_mm
from mixmae_mm.models.backbones.mixmae_swin import MixMAESwin
from mixmae_mm.models.layers.dense_windows import force_attention_path

PKG_DIR = os.path.realpath(os.path.dirname(mixmae_mm.__file__)) + os.sep
#: Calls that read a tensor's values into Python (or to the host).
SYNC_NAMES = frozenset([
    'item', 'tolist', '__bool__', '__int__', '__float__', '__index__',
    '__format__', 'nonzero', 'argwhere', 'unique', 'unique_consecutive',
    'equal', 'bincount', 'masked_select', 'cpu', 'numpy', 'is_nonzero'
])
#: Calls that synchronise only with some arguments (see _is_sync).
INDEX_NAMES = frozenset(
    ['__getitem__', '__setitem__', 'index_put', 'index_put_'])
#: Special methods that some torch releases do not route through a
#: TorchFunctionMode (torch 2.1: ``__getitem__``); wrapped where unseen.
DUNDERS = ('__bool__', '__int__', '__float__', '__index__', '__getitem__',
           '__setitem__')


class SyncCall(NamedTuple):
    """One sync-type call made (directly or not) by package code."""
    name: str
    #: (path under mixmae_mm/, line, function), innermost first
    frames: Tuple[Tuple[str, int, str], ...]
    in_planner: bool
    devices: frozenset


def _tensors(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _is_sync(name: str, args, kwargs) -> bool:
    if name in SYNC_NAMES:
        return True
    if name == 'repeat_interleave':  # output size from a repeats tensor
        if len(args) == 1 and not kwargs:  # torch.repeat_interleave(repeats)
            return True
        repeats = args[1] if len(args) > 1 else kwargs.get('repeats')
        return isinstance(repeats, Tensor)
    if name in INDEX_NAMES:  # bool masks: output size = mask.sum()
        index = args[1] if len(args) > 1 else kwargs.get('indices')
        masks = (torch.bool, torch.uint8)
        return any(t.dtype in masks for t in _tensors(index))
    return False


class SyncCounter(TorchFunctionMode):
    """Record every sync-type call whose Python stack holds package code.

    Args:
        planner: The function allowed to make such calls (its code object
            is looked for in the stack).
    """

    def __init__(self, planner=None):
        super().__init__()
        planner = planner or MixMAESwin.plan_layouts
        self.planner = planner.__code__
        self.calls: List[SyncCall] = []
        self._patched = {}
        self._inside = 0

    def _record(self, name, args, kwargs):
        frames, in_planner = [], False
        frame = sys._getframe(2)
        while frame is not None:
            path = os.path.realpath(frame.f_code.co_filename)
            if path.startswith(PKG_DIR):
                frames.append((path[len(PKG_DIR):], frame.f_lineno,
                               frame.f_code.co_name))
                in_planner |= frame.f_code is self.planner
            frame = frame.f_back
        if frames:
            devices = frozenset(
                t.device.type for t in _tensors((args, kwargs)))
            self.calls.append(
                SyncCall(name, tuple(frames), in_planner, devices))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name not in self._patched and _is_sync(name, args, kwargs):
            self._record(name, args, kwargs)
        # what func calls is not package code (and the mode is off in it);
        # a torch release may hand back a wrapper below as func
        self._inside += 1
        try:
            return func(*args, **kwargs)
        finally:
            self._inside -= 1

    # dunders that a torch release does not route through torch functions
    # are wrapped instead (see _UNSEEN_DUNDERS)
    def __enter__(self):
        for name in _UNSEEN_DUNDERS:
            orig = getattr(Tensor, name)

            def wrapper(t, *args, _orig=orig, _name=name):
                if not self._inside and _is_sync(_name, (t, ) + args, {}):
                    self._record(_name, (t, ) + args, {})
                return _orig(t, *args)

            self._patched[name] = Tensor.__dict__.get(name)
            setattr(Tensor, name, wrapper)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, own in self._patched.items():
            if own is None:  # inherited from the C base class
                delattr(Tensor, name)
            else:
                setattr(Tensor, name, own)
        self._patched.clear()
        return super().__exit__(*exc)

    def outside_planner(self) -> List[SyncCall]:
        return [c for c in self.calls if not c.in_planner]

    def report(self, calls=None) -> str:
        calls = self.calls if calls is None else calls
        lines = []
        for c in calls:
            stack = ' <- '.join(f'{p}:{line} {fn}' for p, line, fn in c.frames)
            lines.append(f'{c.name} on {sorted(c.devices)} at {stack}')
        return '\n'.join(lines)


def _unseen_dunders() -> Tuple[str, ...]:
    """The special methods of :data:`DUNDERS` that a TorchFunctionMode does
    not see on this torch release."""

    class Probe(TorchFunctionMode):
        seen = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.add(getattr(func, '__name__', ''))
            return func(*args, **(kwargs or {}))

    t, mask = torch.tensor([1]), torch.tensor([True])
    with Probe():
        bool(t), int(t), float(t), t.__index__()
        t[mask] = t[mask]
    return tuple(d for d in DUNDERS if d not in Probe.seen)


_UNSEEN_DUNDERS = _unseen_dunders()


def _batch(b=4, size=64):
    # as mmengine's default collate passes it to the data preprocessor
    return dict(
        inputs=torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8),
        data_samples=None)


def _train_step(model, data_batch):
    data = model.data_preprocessor(data_batch, True)
    loss = model.loss(data['inputs'], data['data_samples'])['loss']
    loss.backward()
    return data


@pytest.mark.parametrize('change', [
    {},
    dict(data_preprocessor=dict(per_pair_mask=True, range_mask_ratio=0.2)),
    dict(data_preprocessor=dict(mix_stride=4)),
])
def test_training_step_syncs_only_in_the_planner(tiny_mixmae_cfg, change):
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    for key, value in change.items():
        cfg[key].update(value)
    model = MODELS.build(cfg)
    model.init_weights()
    planned = []
    plan = model.backbone.plan_layouts
    model.backbone.plan_layouts = lambda *a, **k: planned.append(1) or plan(
        *a, **k)
    with SyncCounter() as counter:
        data = _train_step(model, _batch())
    assert planned == [1]  # once per batch
    assert not counter.outside_planner(), counter.report(
        counter.outside_planner())
    # the planner reads only host tensors (on a GPU too: see below)
    assert counter.calls and all(c.devices <= {'cpu'}
                                 for c in counter.calls), counter.report()
    assert data['inputs'][2].device.type == 'cpu'  # the mask stays there


@pytest.mark.parametrize('change', [
    {},
    dict(data_preprocessor=dict(per_pair_mask=True, range_mask_ratio=0.2)),
    dict(data_preprocessor=dict(mix_stride=4)),
])
def test_static_training_step_makes_no_sync(tiny_mixmae_cfg, change):
    """The static-shape path (compiled or on a GPU: dense windows, no
    planner) makes no sync-type call at all in a training step, the mask
    drawing and mixing of the preprocessor included."""
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    for key, value in change.items():
        cfg[key].update(value)
    model = MODELS.build(cfg)
    model.init_weights()
    planned = []
    plan = model.backbone.plan_layouts
    model.backbone.plan_layouts = lambda *a, **k: planned.append(1) or plan(
        *a, **k)
    with force_attention_path('static'), SyncCounter() as counter:
        _train_step(model, _batch())
    assert not planned
    assert not counter.calls, counter.report()


def test_planner_reads_only_host_tensors(tiny_backbone_cfg):
    """Planning for another device (meta: it has no values, so any read of
    a device value would raise) reads CPU tensors only and returns every
    layout tensor on that device."""
    model = MODELS.build(tiny_backbone_cfg)
    for mask in (torch.rand(1, 2, 3) > 0.5, torch.rand(4, 2, 3) > 0.5):
        with SyncCounter() as counter:
            layouts = model.plan_layouts(mask, (64, 96), 'meta')
        assert counter.calls and all(c.in_planner and c.devices <= {'cpu'}
                                     for c in counter.calls)
        assert len(layouts) == 4
        for layout in layouts:
            tensors = [layout.perm, layout.inverse] + [
                t for s in layout.segments for t in (s.rel_index, s.mask)
            ]
            assert all(t.device.type == 'meta' for t in tensors
                       if t is not None)
        if mask.shape[0] > 1:  # per-sample masks, expanded on the device
            assert layouts[0].segments[0].mask.shape[0] == 4


def test_plain_forward_syncs_once_then_never(tiny_mixmae_cfg):
    """Plain layouts depend on shapes only: after the first forward of a
    size (cache filled) there is no sync-type call at all, including the
    backward and a training step without masked attention."""
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['masked_attention'] = False
    model = MODELS.build(cfg)
    model.init_weights()
    imgs = torch.randn(2, 3, 96, 160)  # a size no other test uses
    model.backbone(imgs)
    with SyncCounter() as counter:
        model.backbone(imgs)[-1].sum().backward()
    assert not counter.calls, counter.report()
    _train_step(model, _batch())
    with SyncCounter() as counter:
        _train_step(model, _batch())
    assert not counter.calls, counter.report()


PLANTS = {
    'item': 't.sum().item()',
    'tolist': 't.tolist()',
    '__bool__': 'bool(t.sum() > 0)',
    '__int__': 'int(t.sum())',
    '__float__': 'float(t.sum())',
    '__index__': '[0, 1][t[:1].long().sum().clamp(0, 1)]',
    'nonzero': 't.nonzero()',
    'unique': 'torch.unique(t)',
    'equal': 'torch.equal(t, t)',
    'bincount': 'torch.bincount(t.long().abs())',
    'repeat_interleave': 't.repeat_interleave(t.long().abs())',
    'masked_select': 't.masked_select(t > 0)',
    'cpu': 't.cpu()',
    '__getitem__': 't[t > 0]',
}


@pytest.mark.parametrize('name', sorted(PLANTS))
def test_counter_detects_planted_calls(tiny_mixmae_cfg, monkeypatch, name):
    """Positive control: a sync-type call planted in package code (here in
    the head's loss) during a training step is detected and located."""
    from mixmae_mm.models.heads import mixmae_head
    src = ('def loss(self, pred, imgs, mix_mask):\n'
           '    t = pred.detach().flatten()[:4]\n'
           f'    {PLANTS[name]}\n'
           '    return _orig(self, pred, imgs, mix_mask)\n')
    namespace = dict(_orig=mixmae_head.MixMAEPretrainHead.loss, torch=torch)
    exec(compile(src, mixmae_head.__file__, 'exec'), namespace)
    monkeypatch.setattr(mixmae_head.MixMAEPretrainHead, 'loss',
                        namespace['loss'])
    model = MODELS.build(tiny_mixmae_cfg)
    dunders = {d: getattr(Tensor, d) for d in DUNDERS}
    with SyncCounter() as counter:
        _train_step(model, _batch())
    assert {d: getattr(Tensor, d) for d in DUNDERS} == dunders  # restored
    found = counter.outside_planner()
    assert [c.name for c in found] == [name], counter.report(found)
    assert found[0].frames[0][0].endswith('mixmae_head.py')
    assert found[0].frames[0][2] == 'loss'


def test_dunder_fallback_counts_once(monkeypatch):
    """The wrappers used where a torch release does not route a special
    method through the mode count each call once (forced here)."""
    from mixmae_mm.models.layers import mixing
    monkeypatch.setattr(sys.modules[__name__], '_UNSEEN_DUNDERS', DUNDERS)
    src = ('def plant(t):\n'
           '    t[t > 0] = t[t > 0] * t[:1]\n'  # slices do not count
           '    return bool(t), int(t), float(t), [0, 1][t]\n')
    namespace = {}
    exec(compile(src, mixing.__file__, 'exec'), namespace)
    with SyncCounter() as counter:
        namespace['plant'](torch.tensor([1]))
    assert sorted(c.name for c in counter.calls) == sorted(DUNDERS)
    assert all(c.frames[0][2] == 'plant' for c in counter.calls)
