"""Motion stream building blocks (docs/method.md §6): skeleton augmentation, selection, classifier."""
