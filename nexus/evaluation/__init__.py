"""VBench-style metrics (torchmetrics) and, later, VR-Bench scoring."""
