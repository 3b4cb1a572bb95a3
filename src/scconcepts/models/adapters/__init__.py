"""Model adapters: one module per model, each registering a :class:`~scconcepts.models.base.FoundationModel`.

Every module here is imported by :func:`scconcepts.models.base.registered_models`; a new model
is a new module plus a ``models.<name>`` block in a profile.
"""
