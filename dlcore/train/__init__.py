"""Training: the trainer, background jobs."""
from dlcore.train.jobs import cancel_run, get_run, list_runs, queue_position, refresh, resume_run, start_run, wait
from dlcore.train.trainer import Trainer, TrainingError, device_description, evaluate, pick_device, predict

__all__ = ["Trainer", "TrainingError", "pick_device", "device_description", "evaluate", "predict", "start_run",
           "cancel_run", "resume_run", "get_run", "list_runs", "queue_position", "refresh", "wait"]
