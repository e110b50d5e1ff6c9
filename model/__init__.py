"""What training and serving share: text preprocessing, encoders, the CNN and its config.

Nothing in this package imports `training/` or `handler/`; both of those import it.
"""
