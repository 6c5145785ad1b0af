from .mixmae_pvtv2 import MixMAEPVTv2
from .mixmae_swin import MixMAESwin
from .mixmae_twins import MixMAETwins
from .simmim_mixmae_swin import SimMIMMixMAESwin

__all__ = ['MixMAEPVTv2', 'MixMAESwin', 'MixMAETwins', 'SimMIMMixMAESwin']
