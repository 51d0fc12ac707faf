"""The seed article's noisy-MNIST demo: its options (:mod:`~faultdiag.mnist.config`) and its loop (:mod:`~faultdiag.mnist.demo`)."""

from faultdiag.mnist.config import DemoConfig, load_demo_config
from faultdiag.mnist.demo import run_demo

__all__ = ["DemoConfig", "load_demo_config", "run_demo"]
