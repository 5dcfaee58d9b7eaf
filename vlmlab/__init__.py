"""vlmlab: an interactive lab for vision-language models, from pixels to VQA.

The engine lives in this package (compute and rendering, no UI imports); `demo/` and `widgets/`
wire it to Gradio and to Jupyter.
"""

from vlmlab.errors import LabError, ModelUnavailableError

__all__ = ["LabError", "ModelUnavailableError"]
__version__ = "0.1.0"
