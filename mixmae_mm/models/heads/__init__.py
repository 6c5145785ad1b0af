from .mixmae_head import MixMAEPretrainHead

__all__ = ['MixMAEPretrainHead']
