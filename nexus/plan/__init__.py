"""Memory plans: what each GPU holds for a fit or a sampling run, phase by phase, checked before any weights load
(docs/memory-plan.md; tools/plan.py). table.py: rows, phases, GPUs, refusal; sizes.py: parameter counts from
configs; trace.py + activations.py: activation peaks traced on fake tensors; fit.py, sample.py: the plans."""
