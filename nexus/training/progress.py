"""The training progress bar: optimizer steps out of trainer.max_steps, with loss, learning rates and gradient
norm. Lightning's bar counts batches per epoch, which reads 'Epoch 0/-2' on our step-bounded stream (and
'50/9' after a resume)."""
from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, _update_n


class StepProgressBar(TQDMProgressBar):
    def on_train_start(self, trainer, pl_module) -> None:
        self.train_progress_bar = Tqdm(desc="train step", total=trainer.max_steps if trainer.max_steps > 0 else None,
                                       initial=trainer.global_step,     # a resumed run starts where it stopped
                                       position=2 * self.process_position, disable=self.is_disabled, leave=True,
                                       dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_epoch_start(self, trainer, *_) -> None:
        """One bar over steps: not reset per epoch, as Lightning's is."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            _update_n(bar, trainer.global_step)
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """The bar stays open across epochs; it closes when training ends."""

    def get_metrics(self, trainer, pl_module) -> dict:
        shown = {k.split("/")[-1]: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        for opt in trainer.optimizers[:1]:
            for i, g in enumerate(opt.param_groups):
                shown[f"lr_{g.get('name', i)}"] = f"{g['lr']:.2e}"
        norm = trainer.callback_metrics.get("train/grad_norm")
        if norm is not None:
            shown["grad_norm"] = f"{float(norm):.3g}"
        return shown
