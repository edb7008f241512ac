"""Motion stream building blocks (METHOD.md §6): skeleton augmentation, selection, classifier."""
