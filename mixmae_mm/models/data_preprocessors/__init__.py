from .mixmae_data_preprocessor import MixMAEDataPreprocessor

__all__ = ['MixMAEDataPreprocessor']
