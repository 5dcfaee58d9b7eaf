"""The Jupyter face of vlmlab: ipywidgets over the same engine calls as the Gradio app."""
