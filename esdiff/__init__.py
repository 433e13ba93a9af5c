"""ESDiff: few-shot colour-image inpainting with an encoding-strategy score model."""

__version__ = "0.1.0"
