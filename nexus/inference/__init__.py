"""UPFB inference: prompts in, videos out."""
