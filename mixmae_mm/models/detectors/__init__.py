# Imported by the detection configs (``custom_imports``), not by
# ``mixmae_mm``: it needs mmdet.
from .compilable_detectors import CompilableMaskRCNN, CompilableRetinaNet

__all__ = ['CompilableMaskRCNN', 'CompilableRetinaNet']
