"""Test-only hook for test_shape_streams.py, imported by the evaluation
subprocess through ``custom_imports`` (this folder is on its PYTHONPATH).

``RecordRSSHook(path)``: after every test iteration appends ``{"iter": i,
"hw": [H, W], "rss": bytes, "cache_bytes": [...], "cache_budgets":
[...]}``: the padded batch size the model saw, the process's resident
memory (after ``malloc_trim``, as ``_shape_stream.rss_bytes``), and what
every shape cache of the model (and the process-wide plain layouts) holds.
``lift_budgets=True`` makes every cache unbounded first: the control run
that shows the measurement sees the caches of before.
"""
import json

from _shape_stream import rss_bytes
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def _caches(runner):
    """Every shape cache of the runner's model, and the plain layouts."""
    from mixmae_mm.models.layers import token_layout
    from mixmae_mm.models.utils.shape_cache import ShapeCache
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    caches = [c for m in model.modules() for c in vars(m).values()
              if isinstance(c, ShapeCache)]
    return caches + [token_layout._PLAIN_LAYOUTS]


@HOOKS.register_module()
class RecordRSSHook(Hook):
    priority = 'VERY_LOW'

    def __init__(self, path, lift_budgets=False):
        self.path = path
        self.lift_budgets = lift_budgets

    def before_test(self, runner):
        if self.lift_budgets:
            for cache in _caches(runner):
                cache.max_bytes = 2**62

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        caches = _caches(runner)
        with open(self.path, 'a') as f:
            f.write(json.dumps(dict(
                iter=batch_idx,
                hw=list(outputs[0].metainfo['batch_input_shape']),
                rss=rss_bytes(),
                cache_bytes=[c.nbytes for c in caches],
                cache_budgets=[c.max_bytes for c in caches])) + '\n')
