from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .selfsup import *  # noqa: F401,F403

# mmdet's and mmseg's compilable classes, where those packages import
from .downstream import register_downstream_classes  # noqa: E402

register_downstream_classes()
