from .linear_probe import extract_features, linear_probe_accuracy

__all__ = ['extract_features', 'linear_probe_accuracy']
