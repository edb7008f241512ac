"""hscvad: Hierarchical Semantic Contrast for scene-aware video anomaly detection, as a pipeline."""

__version__ = "0.1.0"
