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
                   version: str | None = None, progress: Progress = SILENT, trained=None, page_requests: int = 0,
                   tradeoff: bool = True):
    """Evaluate the models; with ground truth and page_requests > 0, also whole pages per pipeline
    (appended to the report; the result carries them as `result.pages`)."""
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
    result = evaluate(store.con, trained, report_dir, truth, TrainOptions.from_config(settings.train),
                      progress=progress)
    if truth is not None and page_requests > 0:
        from shelfrank.evaluate.pages import (
            evaluate_pages,
            page_report_sections,
            page_variants,
            tradeoff_pipelines,
        )
        from shelfrank.evaluate.report import append_sections
        from shelfrank.page.pipeline import configured_default, pipelines_from

        default = configured_default(settings.page)
        pipelines = page_variants(pipelines_from(default))
        if tradeoff:
            pipelines.update(tradeoff_pipelines((1.0, 0.85, 0.7, 0.4), default))
        pages = evaluate_pages(store.con, models_dir(settings), truth, trained.split.split, trained.split.end,
                               pipelines, n_requests=page_requests, progress=progress)
        append_sections(result.report_path, page_report_sections(pages, result.report_path.parent))
        result.pages = pages
    return result
