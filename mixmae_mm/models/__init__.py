from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .selfsup import *  # noqa: F401,F403

# mmdet's and mmseg's compilable detector and segmentor classes (detectors/,
# segmentors/), registered wherever those packages import: configs and
# users' configs name only 'mixmae_mm' in `custom_imports`
import importlib as _importlib  # noqa: E402

for _pkg, _module in (('mmdet', 'detectors'), ('mmseg', 'segmentors')):
    try:
        _importlib.import_module(f'{_pkg}.models')
    except ImportError:  # not installed, or without mmcv's compiled ops
        continue
    _importlib.import_module(f'.{_module}', __name__)
