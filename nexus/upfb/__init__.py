"""Unified Progressive Frequency Bridging (paper Sec. 3.3, Algorithm 1): the maths, one concept per file."""
from nexus.upfb.fusion import RMS_MODES, fuse, sample_rms
from nexus.upfb.guidance import CFG_FORMS, guided
from nexus.upfb.lowpass import KERNELS, lowpass, reference_kernel_size
from nexus.upfb.schedule import CLOCKS, bandwidth, remaining_fraction, temporal_weight

__all__ = ["CFG_FORMS", "CLOCKS", "KERNELS", "RMS_MODES", "bandwidth", "fuse", "guided", "lowpass",
           "reference_kernel_size", "remaining_fraction", "sample_rms", "temporal_weight"]
