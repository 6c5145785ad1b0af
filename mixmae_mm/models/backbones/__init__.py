from .mixmae_swin import MixMAESwin
from .simmim_mixmae_swin import SimMIMMixMAESwin

__all__ = ['MixMAESwin', 'SimMIMMixMAESwin']
