# Imported by ``mixmae_mm.models`` where mmseg imports (it needs mmseg).
from .compilable_encoder_decoder import CompilableEncoderDecoder

__all__ = ['CompilableEncoderDecoder']
