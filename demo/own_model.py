""""Your own model": a text box under a tab's model dropdown that takes a model by name (a
torchvision builder name or a Hugging Face id), checks it, loads it with progress, says what the
lab found in it, and puts it in the dropdown. Hidden when models by name are off (--models curated).
"""

from __future__ import annotations

import gradio as gr

from .common import MODEL_EVENT, Lab, guard, open_photo, progress_callback
from vlmlab.models import choices, get_spec, load_model
from vlmlab.models_by_name import describe_found, policy

HINTS = {
    "cnn": "a torchvision classifier: efficientnet_b0, convnext_tiny, regnet_y_400mf, …",
    "vit": "a Hugging Face id: ViT, DeiT, DINO, DINOv2 (with registers), BEiT, CLIP or SigLIP",
    "clip": "a Hugging Face id of the CLIP or SigLIP family, e.g. google/siglip-base-patch16-224",
}


def model_dropdown(topic: str, choices=None, **kwargs) -> gr.Dropdown:
    """A tab's model dropdown: the curated choices, and any model by name the engine accepts.

    Its API description says so: a string (the curated names are examples, not an enum) when
    models by name are on here, the curated names alone when they are off (--models curated).
    (A stock Dropdown with its `api_info` replaced: a Component subclass would make Gradio
    write a .pyi file beside this module at import.)
    """
    kwargs.setdefault("allow_custom_value", True)  # a model by name; the engine checks it
    dropdown = gr.Dropdown(dropdown_choices(topic) if choices is None else choices, **kwargs)
    curated_only = dropdown.api_info  # the stock description: an enum of the choices

    def api_info() -> dict:
        if not policy().enabled:
            return curated_only()
        names = [value for _, value in dropdown.choices]
        return {
            "type": "string",
            "examples": names,
            "additional_description": f"free text: one of {', '.join(names)}, or {HINTS[topic]}",
        }

    dropdown.api_info = api_info
    return dropdown


def dropdown_choices(topic: str, extra: str | None = None) -> list[tuple[str, str]]:
    """The curated choices, then `extra` (a model by name) if it is not one of them."""
    names = choices(topic)
    if extra and extra not in names:
        names = [*names, extra]
    return [(get_spec(name).title, name) for name in names]


def build(lab: Lab, topic: str, dropdown: gr.Dropdown):
    """The box and its events, under `dropdown` (call inside the tab's layout). Returns the
    event that selects the model, for the tab to chain what a new model needs."""
    with gr.Row(visible=policy().enabled):
        box = gr.Textbox(
            label="…or your own model",
            placeholder=HINTS[topic],
            max_lines=1,
            scale=3,
            elem_id=f"{topic}-own-model",
        )
        use = gr.Button("Use it", scale=1, size="sm")
    found = gr.Markdown(elem_id=f"{topic}-own-model-found")

    def use_model(model, photo=None, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
        """Check the name, load the model, say what the lab found, select it (ViT: the photo its
        tokens are counted on)."""
        image = open_photo(photo).image if topic == "vit" else None
        name = get_spec(str(model or "").strip(), topic).name
        if topic != "cnn":
            load_model(
                name,
                topic=topic,
                attn_implementation="eager" if topic == "vit" else None,
                progress=progress_callback(progress),
            )
        lines = describe_found(name, topic, image)
        return gr.Dropdown(choices=dropdown_choices(topic, name), value=name), "\n\n".join(lines)

    return gr.on(
        [box.submit, use.click],
        guard(use_model),
        [box, lab.photo] if topic == "vit" else [box],
        [dropdown, found],
        api_name=f"{topic}_model_by_name",
        **MODEL_EVENT,
    )
