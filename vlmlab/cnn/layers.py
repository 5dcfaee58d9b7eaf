"""What a CNN is made of, read from its own structure: readable layer names, each layer's output
shape and receptive field, and its depth in weight layers ("the revolution of depth": AlexNet 8,
VGG 19, ResNet 152), and a feature-extractor graph (what torchvision's `create_feature_extractor`
builds) that captures every layer in one forward. Nothing here runs a model: it all comes from a weightless copy on the meta device.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torchvision.models.feature_extraction import NodePathTracer

from vlmlab.errors import LabError
from vlmlab.models import choices, default_model, get_spec, torchvision_weights

# A leaf module's kind, which names it: conv1, relu1, pool1, bn1 …
_LEAF_KINDS: tuple[tuple[type, str], ...] = (
    (nn.Conv2d, "conv"),
    (nn.BatchNorm2d, "bn"),
    ((nn.ReLU, nn.ReLU6), "relu"),
    ((nn.MaxPool2d, nn.AvgPool2d), "pool"),
    (nn.AdaptiveAvgPool2d, "avgpool"),
    (nn.AdaptiveMaxPool2d, "maxpool"),
)
_UNNUMBERED = ("avgpool", "maxpool")  # the one global pool keeps its plain name
_HEAD = (nn.Linear, nn.Dropout, nn.Flatten)  # the classifier: no feature maps to look at
_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    """One place in the network whose output can be looked at as feature maps."""

    name: str  # readable: conv1, relu1, pool1, layer3 (a ResNet stage), block5, avgpool
    path: str  # the module's qualified name in the model: features.0, layer3
    kind: str  # conv, relu, pool, bn, block, stage, avgpool …
    shape: tuple[int, int, int]  # (C, H, W) of its output at the model's input size
    receptive_field: int  # side in input pixels of the patch one output value can see
    stride: int  # input pixels between neighbouring output values

    def describe(self, input_size: int) -> str:
        c, h, w = self.shape
        seen = f"{self.receptive_field}×{self.receptive_field} input pixels"
        if self.receptive_field >= input_size:
            seen += f" (the whole {input_size}×{input_size} input)"
        return f"{self.name}: {c}×{h}×{w} (channels × height × width); each value sees {seen}."


@dataclass(frozen=True)
class Architecture:
    """A CNN's layers in the order they run, and what a lecture says about its size."""

    layers: tuple[Layer, ...]
    input_size: int  # side of the square the model's preprocessing crops to
    depth: int  # weight layers (conv + fully connected) on the longest path, as papers count
    first_conv: str  # module path of the first convolution (its filters look at pixels)
    evidence_layer: str  # module path of the last spatial feature maps (for Grad-CAM)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in self.layers)
        raise LabError(f"Unknown layer {str(name)[:40]!r}; choose one of: {names}.")

    def layer_at(self, path: str) -> Layer:
        """The layer that holds the module at `path` (features.0.0 is inside conv1 = features.0)."""
        return next(
            layer
            for layer in self.layers
            if path == layer.path or path.startswith(layer.path + ".")
        )

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def describe_architecture(model: nn.Module, input_size: int) -> Architecture:
    """Name the feature-map layers of `model` and measure them, without running it on data.

    `model` may live on the meta device: shapes are propagated through meta tensors.
    """
    return _read(model, input_size)[0]


def _read(model: nn.Module, input_size: int) -> tuple[Architecture, fx.Graph]:
    """`describe_architecture`, and from the same trace a graph that returns every layer's
    output by its readable name (what torchvision's `create_feature_extractor` builds, with
    one trace instead of its three)."""
    tracer = NodePathTracer()
    graph = tracer.trace(model)
    module = fx.GraphModule(tracer.root, graph)
    device = next(model.parameters()).device  # meta: shapes are worked out, nothing computed
    ShapeProp(module).propagate(torch.empty(1, 3, input_size, input_size, device=device))
    modules = dict(model.named_modules())
    field, stride = _receptive_fields(graph, modules)
    last_node = {}  # module path -> the last graph node inside it (its output)
    for node in graph.nodes:
        qualname = tracer.node_to_qualname.get(node)
        if qualname is None:
            continue
        parts = qualname.split(".")
        for i in range(1, len(parts) + 1):
            last_node[".".join(parts[:i])] = node

    units = [(path, m) for path, m in _units(model, "") if path in last_node]
    order = {node: i for i, node in enumerate(graph.nodes)}
    units.sort(key=lambda unit: order[last_node[unit[0]]])  # the order they run in
    layers, counts = [], {}
    kinds = [_kind(path, m) for path, m in units]
    totals = {kind: kinds.count(kind) for kind in kinds}
    for (path, m), kind in zip(units, kinds):
        node = last_node[path]
        shape = node.meta["tensor_meta"].shape
        if len(shape) != 4:
            continue  # flattened already: the classifier
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "stage":
            name = path.rsplit(".", 1)[-1]
            name = name if not name.isdigit() else f"stage{counts[kind]}"
        elif kind in _UNNUMBERED and totals[kind] == 1:
            name = kind
        else:
            name = f"{kind}{counts[kind]}"
        layers.append(
            Layer(name, path, kind, tuple(int(s) for s in shape[1:]), field[node], stride[node])
        )

    convs = [n for n in graph.nodes if isinstance(_module(n, modules), nn.Conv2d)]
    architecture = Architecture(
        layers=tuple(layers),
        input_size=input_size,
        depth=_depth(graph, modules),
        first_conv=str(convs[0].target),
        evidence_layer=_evidence_layer(layers),
    )
    outputs = {layer.name: last_node[layer.path] for layer in layers}
    return architecture, _returning(tracer.root, graph, outputs)


def _returning(root: nn.Module, graph: fx.Graph, outputs: dict[str, fx.Node]) -> fx.Graph:
    """A copy of `graph` whose output is {name: node}; what no output needs (the classifier) is
    dropped."""
    copied = fx.Graph()
    nodes: dict[fx.Node, fx.Node] = {}
    copied.graph_copy(graph, nodes)
    copied.output({name: nodes[node] for name, node in outputs.items()})
    module = fx.GraphModule(root, copied)  # dead-code elimination asks the modules
    module.graph.eliminate_dead_code()
    module.graph.lint()
    return module.graph


def _units(module: nn.Module, prefix: str):
    """The modules a student would call layers: leaves, blocks and ResNet-style stages."""
    for name, child in module.named_children():
        path = prefix + name
        if isinstance(child, _HEAD) or _is_classifier(child):
            continue
        if type(child) is nn.Sequential and not _is_stage(child):
            yield from _units(child, path + ".")  # a plain container: look inside
        else:
            yield path, child


def _is_classifier(module: nn.Module) -> bool:
    """A head that ends in a fully connected layer (AlexNet's classifier, ConvNeXt's norm →
    flatten → linear). Blocks that use Linear layers on feature maps (ConvNeXt's CNBlock) are
    not heads: a head flattens before its Linear."""
    leaves = [m for m in module.modules() if not list(m.children())]
    return any(isinstance(m, nn.Linear) for m in leaves) and (
        any(isinstance(m, nn.Flatten) for m in leaves)
        or all(isinstance(m, (*_HEAD, nn.ReLU, nn.ReLU6, nn.Hardswish)) for m in leaves)
    )


def _is_stage(sequence: nn.Sequential) -> bool:
    """A run of identical blocks (ResNet's layer1…layer4) is shown as one stage."""
    blocks = list(sequence.children())
    return (
        len(blocks) >= 2
        and all(len(list(b.children())) > 0 for b in blocks)
        and len({type(b) for b in blocks}) == 1
    )


def _kind(path: str, module: nn.Module) -> str:
    for types, kind in _LEAF_KINDS:
        if isinstance(module, types):
            return kind
    if type(module) is nn.Sequential:
        return "stage"
    leaves = [m for m in module.modules() if not list(m.children())]
    # A conv followed only by its normalisation and activation (Conv2dNormActivation) is a conv.
    if (
        leaves
        and isinstance(leaves[0], nn.Conv2d)
        and sum(isinstance(m, nn.Conv2d) for m in leaves) == 1
    ):
        return "conv"
    return "block"


def _module(node: fx.Node, modules: dict[str, nn.Module]) -> nn.Module | None:
    return modules.get(str(node.target)) if node.op == "call_module" else None


def _pair(value) -> int:
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def _receptive_fields(graph: fx.Graph, modules: dict[str, nn.Module]):
    """Receptive field r and jump j of every node: r += (k − 1)·d·j, then j *= s.

    Branches (residual additions) take the larger field; a global pool sees everything below it.
    """
    field: dict[fx.Node, int] = {}
    stride: dict[fx.Node, int] = {}
    for node in graph.nodes:
        inputs = [n for n in node.all_input_nodes if n in field]
        r = max((field[n] for n in inputs), default=1)
        j = max((stride[n] for n in inputs), default=1)
        module = _module(node, modules)
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _pair(module.kernel_size), _pair(module.stride)
            d = _pair(getattr(module, "dilation", 1))
            r, j = r + (k - 1) * d * j, j * s
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size_in = node.all_input_nodes[0].meta["tensor_meta"].shape[-1]
            size_out = node.meta["tensor_meta"].shape[-1]
            if size_out != size_in:  # PyTorch's adaptive windows: about ceil(in/out) wide
                k, s = math.ceil(size_in / size_out), size_in // size_out
                r, j = r + (k - 1) * j, j * s
        field[node], stride[node] = r, j
    return field, stride


def _depth(graph: fx.Graph, modules: dict[str, nn.Module]) -> int:
    """Weight layers on the longest path from input to output (shortcut convs run beside it)."""
    depth: dict[fx.Node, int] = {}
    for node in graph.nodes:
        below = max((depth.get(n, 0) for n in node.all_input_nodes), default=0)
        depth[node] = below + isinstance(_module(node, modules), _WEIGHT_LAYERS)
    return max(depth.values(), default=0)


def _evidence_layer(layers: list[Layer]) -> str:
    """The last convolutional feature maps (after their activation): Grad-CAM's usual choice."""
    spatial = [layer for layer in layers if layer.shape[1] > 1 and layer.kind not in _UNNUMBERED]
    last = max(
        (i for i, layer in enumerate(spatial) if layer.kind in ("conv", "block", "stage")),
        default=len(spatial) - 1,
    )
    while last + 1 < len(spatial) and spatial[last + 1].kind in ("relu", "bn"):
        last += 1
    return spatial[last].path


# ---------------------------------------------------------------------------------------------
# The registry's CNNs, read once

TOPIC = "cnn"
DEFAULT_MODEL = default_model(TOPIC)  # AlexNet, as in the lecture
_tracing = threading.Lock()  # torch.fx patches nn.Module.__call__ for the whole process


@functools.cache
def _structure(model: str) -> tuple[Architecture, fx.Graph]:
    """Read a CNN's structure once, from a weightless copy on the meta device: its layers, and
    a feature-extractor graph returning every layer's output (shared by all copies).
    """
    spec = get_spec(model, TOPIC)
    size = torchvision_weights(spec.name).transforms().crop_size[0]
    with _tracing:
        try:
            with torch.device("meta"):
                skeleton = torchvision.models.get_model(spec.name, weights=None).eval()
                return _read(skeleton, size)
        except NotImplementedError:  # an initialiser that copies data (RegNet): build it for real
            skeleton = torchvision.models.get_model(spec.name, weights=None).eval()
            return _read(skeleton, size)


def architecture(model: str = DEFAULT_MODEL) -> Architecture:
    """The model's layers, shapes, receptive fields and depth, read from its structure alone.

    Built on the meta device: no weights are needed, nothing is computed or downloaded.
    """
    return _structure(model)[0]


def capture_graph(model: str) -> fx.Graph:
    """A fresh copy of the model's feature-extractor graph (outputs: every layer, by name)."""
    return copy.deepcopy(_structure(model)[1])


def prepare(models: Sequence[str] | None = None) -> None:
    """Trace every CNN (or `models`) once, before serving. While torch.fx traces, it patches
    `nn.Module.__call__` for the whole process, so tracing must not overlap other forwards."""
    for name in models or choices(TOPIC):
        _structure(name)


def layer_names(model: str = DEFAULT_MODEL) -> list[str]:
    """The readable names of the layers whose feature maps can be shown (conv1, relu1, …)."""
    return architecture(model).names
