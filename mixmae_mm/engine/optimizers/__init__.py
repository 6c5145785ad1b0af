from .layer_decay_optim_wrapper_constructor import \
    MixMAELayerDecayOptimWrapperConstructor

__all__ = ['MixMAELayerDecayOptimWrapperConstructor']
