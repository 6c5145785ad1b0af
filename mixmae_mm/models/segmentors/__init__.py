# Imported by the segmentation configs (``custom_imports``), not by
# ``mixmae_mm``: it needs mmseg.
from .compilable_encoder_decoder import CompilableEncoderDecoder

__all__ = ['CompilableEncoderDecoder']
