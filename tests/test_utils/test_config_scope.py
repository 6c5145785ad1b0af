"""``mixmae_mm::`` configs: inherited from a config outside the checkout,
built in the inheriting config's scope, found for editable installs, and
the failure (with mmengine's message) of a config read before the import."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from mixmae_mm.utils import config_scope

ROOT = Path(__file__).resolve().parents[2]
DEMO_DET = ('mixmae/benchmarks/mmdet/'
            'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py')
DEMO_PRE = 'mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'


def _scopes(cfg):
    """Every ``_scope_`` value in a config dict."""
    if isinstance(cfg, dict):
        own = [cfg['_scope_']] if '_scope_' in cfg else []
        return own + [s for v in cfg.values() for s in _scopes(v)]
    if isinstance(cfg, (list, tuple)):
        return [s for v in cfg for s in _scopes(v)]
    return []


def _user_config(folder, base, extra=''):
    path = folder / 'my_config.py'
    path.write_text(f"_base_ = 'mixmae_mm::{base}'\n{extra}")
    return str(path)


def test_base_from_outside_the_checkout_equals_the_shipped_config(tmp_path):
    cfg = Config.fromfile(
        _user_config(tmp_path, DEMO_DET, 'train_cfg = dict(max_epochs=1)\n'))
    shipped = Config.fromfile(str(ROOT / 'configs' / DEMO_DET))
    assert cfg.train_cfg.max_epochs == 1 != shipped.train_cfg.max_epochs
    assert cfg.model.to_dict() == shipped.model.to_dict()
    assert cfg.default_scope == 'mmdet'
    # what comes from mmdet:: bases keeps mmdet's tag; nothing is tagged
    # with this package (no such registry scope)
    assert 'mixmae_mm' not in _scopes(cfg.to_dict())


@pytest.mark.parametrize('base, model_type',
                         [(DEMO_PRE, 'MixMAE'),
                          (DEMO_DET, 'CompilableMaskRCNN')])
def test_inherited_model_builds_in_the_inheriting_configs_scope(
        tmp_path, base, model_type):
    """mmengine's Runner builds through its root MODELS with the config's
    default scope. The pretraining model dict comes from a local base, so
    mmengine would tag it ``_scope_='mixmae_mm'`` and build it from the root
    registry, which has no MixMAE (KeyError); the Mask R-CNN dict keeps the
    ``mmdet`` tag of its ``mmdet::`` base."""
    cfg = Config.fromfile(
        _user_config(tmp_path, base,
                     'model = dict(backbone=dict(init_cfg=None))\n'))
    assert cfg.model.get('_scope_') in (None, 'mmdet')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == model_type
    assert type(model.backbone).__name__ == 'MixMAESwin'


def test_pretraining_config_and_hub_get_config(tmp_path):
    import mmengine.hub
    cfg = Config.fromfile(_user_config(tmp_path, DEMO_PRE))
    assert cfg.model.type == 'MixMAE' and cfg.default_scope == 'mmpretrain'
    hub = mmengine.hub.get_config(f'mixmae_mm::{DEMO_PRE}')
    assert hub.model.to_dict() == cfg.model.to_dict()


def test_installed_path_is_this_package_for_us_only():
    import mmengine.config.config as mm_config
    from mmengine.utils import get_installed_path
    assert mm_config.get_installed_path('mixmae_mm') == str(ROOT / 'mixmae_mm')
    assert mm_config.get_installed_path('mmdet') == get_installed_path('mmdet')
    # registering twice wraps once
    config_scope.register_config_scope()
    assert mm_config.get_installed_path.__wrapped__ is get_installed_path


def test_config_path_names_what_is_missing():
    assert config_scope.config_path(f'mixmae_mm::{DEMO_PRE}') == str(
        ROOT / 'mixmae_mm' / '.mim' / 'configs' / DEMO_PRE)
    with pytest.raises(
            FileNotFoundError,
            match=r'mixmae_mm::nope\.py: no '
            r'such config in .*\.mim/configs'):
        config_scope.config_path('mixmae_mm::nope.py')


def test_read_before_the_import_fails_and_python_m_mixmae_mm_helps(tmp_path):
    """What upstream tools/train.py meets: the config is read before any
    import of mixmae_mm, and custom_imports comes too late for _base_."""
    config = _user_config(tmp_path, DEMO_PRE,
                          "custom_imports = dict(imports=['mixmae_mm'])\n")
    script = tmp_path / 'read_config.py'
    script.write_text(
        textwrap.dedent('''
        import sys
        from mmengine.config import Config
        print('model:', Config.fromfile(sys.argv[1]).model.type)
    '''))
    plain = subprocess.run(
        [sys.executable, str(script), config],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300)
    assert plain.returncode != 0
    assert 'mmengine does not support to load mixmae_mm config' in \
        plain.stderr
    helped = subprocess.run(
        [sys.executable, '-m', 'mixmae_mm',
         str(script), config],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300)
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert helped.stdout.strip().endswith('model: MixMAE')


def test_python_m_mixmae_mm_refuses_a_missing_script(tmp_path):
    res = subprocess.run(
        [sys.executable, '-m', 'mixmae_mm',
         str(tmp_path / 'nope.py')],
        capture_output=True,
        text=True,
        timeout=300)
    assert res.returncode != 0
    assert 'is not a file' in res.stderr and 'nope.py' in res.stderr
