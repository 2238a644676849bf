"""videor1: train and evaluate video-reasoning multimodal LLMs the Video-R1 way."""

__version__ = "0.1.0"
