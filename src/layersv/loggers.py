"""Experiment loggers beside training.log / metrics.csv: TensorBoard, Weights & Biases, neptune.

All optional: ``--logger tensorboard`` needs the ``logging`` extra; ``wandb`` and ``neptune``
need their own packages (``pip install wandb`` / ``pip install neptune``); a missing package is a
clear error before training starts, never a silent no-op.
"""

from __future__ import annotations

from pathlib import Path


class NullLogger:
    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(NullLogger):
    def __init__(self, run_dir: Path, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--logger tensorboard needs tensorboard: pip install 'layersv[logging]'") from None
        self.w = SummaryWriter(str(run_dir / "tb"))
        self.w.add_text("config", f"```\n{config}\n```")

    def log(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.w.add_scalar(k, v, step)
        self.w.flush()

    def close(self) -> None:
        self.w.close()


class WandbLogger(NullLogger):
    def __init__(self, run_dir: Path, config: dict):
        try:
            import wandb
        except ImportError:
            raise ValueError("--logger wandb needs wandb: pip install wandb") from None
        self.run = wandb.init(config=config, dir=str(run_dir), name=run_dir.name)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class NeptuneLogger(NullLogger):
    def __init__(self, run_dir: Path, config: dict):
        try:
            import neptune
        except ImportError:
            raise ValueError("--logger neptune needs neptune: pip install neptune (and NEPTUNE_API_TOKEN)") from None
        self.run = neptune.init_run(name=run_dir.name)
        self.run["parameters"] = config

    def log(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.run[k].append(v, step=step)

    def close(self) -> None:
        self.run.stop()


LOGGERS = {"none": NullLogger, "tensorboard": TensorBoardLogger, "wandb": WandbLogger, "neptune": NeptuneLogger}


def build_logger(name: str, run_dir: Path, config: dict) -> NullLogger:
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; valid: {', '.join(LOGGERS)}")
    return NullLogger() if name == "none" else LOGGERS[name](run_dir, config)
