from .mixmae_swin import MixMAESwin

__all__ = ['MixMAESwin']
