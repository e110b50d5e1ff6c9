"""The TorchServe handler (`handler.py`) and its archive configuration (`model-config.yaml`).

Inside a `.mar` only `handler.py` ships: TorchServe imports it as the top-level module
`handler`, so it must use absolute imports of the `model` package shipped beside it.
"""
