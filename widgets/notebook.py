"""What the lecture notebooks share: a model that is here (else the lecture's own, whose widgets
say how to get it), and cells that show that sentence in a widget instead of stopping, so a
notebook runs top to bottom on any machine.

    MODEL = pick("cnn", "alexnet", "mobilenet_v2")   # AlexNet, else MobileNetV2 offline
    if ready(MODEL):                                 # else: the sentence, and the cell is skipped
        print(cnn.classify(photo, MODEL))
"""

from __future__ import annotations

import ipywidgets as widgets
from IPython.display import display

from vlmlab.errors import LabError
from vlmlab.models import check_available, first_available
from vlmlab.render import error_html



def pick(topic: str, *names: str) -> str:
    """The first of `names` (default: the topic's models, its default first) that can be had
    here; when none can, the first, whose widgets and `ready` then say how to get it."""
    return first_available(topic, names)


def ready(*names: str) -> bool:
    """Whether every model named can be had here (nothing is loaded). If one cannot, its sentence
    is shown in a widget, as the model widgets show it, and False lets the cell skip its work:
    write a model cell as `if ready(MODEL):` and the notebook goes on without it."""
    for name in names:
        try:
            check_available(name)
        except LabError as error:
            display(widgets.HTML(error_html(error)))
            return False
    return True
