"""SLURM: sbatch scripts for fit / watch_eval jobs (tools/submit.py), the SIGUSR1 save-and-requeue callback and
the choice of the checkpoint a requeued job resumes from (docs/slurm.md)."""
