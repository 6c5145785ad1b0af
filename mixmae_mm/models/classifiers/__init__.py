from .compilable_image_classifier import CompilableImageClassifier

__all__ = ['CompilableImageClassifier']
