"""Small statistics helpers: the sample project of `tandem-lsp demo`."""


def median(values):
    """The middle value of `values` (the mean of the two middle values when there is an even number)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
