from .mixmae import MixMAE

__all__ = ['MixMAE']
