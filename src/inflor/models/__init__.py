"""``inflor.models``: a registry of spiking networks, every paper table row one configuration.

    from inflor.models import create_model, list_models
    model = create_model("resnet19", num_classes=10, neuron="inflor", norm="tdbn")
    logits = model(images)                # [B, 3, 32, 32] -> [T, B, 10]; predict logits.mean(0)

See ``inflor.models.base`` for the common options and the input layout, and each model's
docstring (``inflor.models.<name>.__doc__`` or ``list_models()``) for its layer table.
"""
from .base import COMMON_OPTIONS, SpikingModel, to_time_first  # noqa: F401
from .registry import create_model, get_model_entry, list_models, model_options, register_model  # noqa: F401
from . import resnet, stbp_cifarnet, tiny, vgg  # noqa: F401,E402  (registers the models)
from .stbp_cifarnet import CIFARNet, cifarnet, cifarnet_voting  # noqa: F401
from .resnet import SpikingResNet, resnet18, resnet19, resnet19_fc256, resnet20, resnet20_diet, resnet34  # noqa: F401
from .tiny import TinyConv, tinyconv  # noqa: F401
from .vgg import SpikingVGG, vgg16, vgg16_diet, vgg16_diet_imagenet  # noqa: F401

__all__ = ["create_model", "list_models", "register_model", "model_options", "get_model_entry",
           "SpikingModel", "to_time_first", "COMMON_OPTIONS"]
