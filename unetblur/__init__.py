"""unetblur: face anonymisation with a distilled U-Net, compared against detector-plus-blur."""

__version__ = "0.1.0"
