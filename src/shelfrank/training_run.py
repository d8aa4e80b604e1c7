"""Training and evaluation runs as the CLI and the demo start them: configuration in, artefacts out."""

from __future__ import annotations

from pathlib import Path

from shelfrank.config import Settings
from shelfrank.errors import UserFacingError
from shelfrank.progress import SILENT, Progress


def models_dir(settings: Settings) -> Path:
    return settings.store.data_dir / "models"


def run_training(store, settings: Settings, progress: Progress = SILENT):
    from shelfrank.models.training import TrainOptions, train

    return train(store.con, models_dir(settings), TrainOptions.from_config(settings.train), progress)


def run_evaluation(store, settings: Settings, report_dir: Path, truth_dir: Path | None = None,
                   version: str | None = None, progress: Progress = SILENT, trained=None):
    from shelfrank.evaluate.offline import evaluate
    from shelfrank.models.training import TimeSplit, TrainOptions, load_trained

    truth = None
    if truth_dir is not None:
        from shelfrank.simulate import GroundTruth

        if not (truth_dir / "meta.json").is_file():
            raise UserFacingError(f"{truth_dir} is not a ground-truth folder (expected meta.json in it)")
        truth = GroundTruth.load(truth_dir)
    if trained is None:
        trained = load_trained(models_dir(settings), version)
        end = store.con.execute("SELECT max(ts) FROM events WHERE event_type = 'impression'").fetchall()[0][0]
        trained.split = TimeSplit(trained.split.start, trained.split.split, end)
    if trained.split.end <= trained.split.split:
        raise UserFacingError("the store has no events after the models' training window to evaluate on")
    return evaluate(store.con, trained, report_dir, truth, TrainOptions.from_config(settings.train),
                    progress=progress)
