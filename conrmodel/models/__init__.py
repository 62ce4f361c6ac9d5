"""Networks: ResNet backbones and the UDP decoder U-Net (``backbones``), the UDP detector (``detector``),
the collaborative renderer (``renderer``), VGG features and LPIPS for losses and metrics (``vgg``,
``lpips``), the official release's layout (``official``) and the presets that build them (``factory``).
"""

from conrmodel.models.backbones import ResNetEncoder, ResUNet, load_torchvision_resnet
from conrmodel.models.detector import UDPDetector, count_parameters, normalise_input, udp_from_prediction
from conrmodel.models.factory import (
    DETECTOR_PRESETS,
    RENDERER_PRESETS,
    build_detector,
    build_renderer,
    detector_config,
    renderer_config,
)
from conrmodel.models.lpips import LPIPS
from conrmodel.models.official import load_official, save_official
from conrmodel.models.renderer import CollaborativeRenderer, SheetCache
from conrmodel.models.vgg import VGGFeatures, VGGLoss, load_vgg

__all__ = [
    "DETECTOR_PRESETS",
    "LPIPS",
    "RENDERER_PRESETS",
    "CollaborativeRenderer",
    "ResNetEncoder",
    "ResUNet",
    "SheetCache",
    "UDPDetector",
    "VGGFeatures",
    "VGGLoss",
    "build_detector",
    "build_renderer",
    "count_parameters",
    "detector_config",
    "load_official",
    "load_torchvision_resnet",
    "load_vgg",
    "normalise_input",
    "renderer_config",
    "save_official",
    "udp_from_prediction",
]
