# Imported by ``mixmae_mm.models`` where mmdet imports (it needs mmdet).
from .compilable_detectors import CompilableMaskRCNN, CompilableRetinaNet

__all__ = ['CompilableMaskRCNN', 'CompilableRetinaNet']
