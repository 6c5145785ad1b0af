from .mixmae_decoder import MixMAEPretrainDecoder

__all__ = ['MixMAEPretrainDecoder']
