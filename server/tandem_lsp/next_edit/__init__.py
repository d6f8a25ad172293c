"""Next-edit suggestions: after a change in one place, the matching change at the next place.

    recent edits (context) -> window -> template (sweep | zeta | instruct) -> local model (rewrite)
        -> diff to edits (edits) -> filters -> one suggestion set per document (pipeline)
"""
