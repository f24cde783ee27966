"""The video core: probe, plan, decode and sample, token budgeting.

A pure library (PyAV + NumPy, no Ray, vLLM or web framework) shared by the
Serve deployments and the bulk jobs.
"""

from serve_app.video.chunking import chunking_options, plan_chunks, plan_file
from serve_app.video.decode import SampledChunk, decode_chunk
from serve_app.video.probe import file_sha256, probe
from serve_app.video.tokens import FACTOR, fit_frame_size, visual_tokens

__all__ = [
    "FACTOR",
    "SampledChunk",
    "chunking_options",
    "decode_chunk",
    "file_sha256",
    "fit_frame_size",
    "plan_chunks",
    "plan_file",
    "probe",
    "visual_tokens",
]
