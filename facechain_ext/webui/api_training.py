"""HTTP routes for training: start a job, poll it, cancel it, list FaceChain-made LoRAs (issue 3 §3).

    POST /facechain/v1/train              TrainRequestModel -> 202 {"job_id", "status", "host_task_id"}
    GET  /facechain/v1/jobs/{job_id}      -> JobModel {id, kind, status, progress, eta_s, textinfo, result, error}
    POST /facechain/v1/jobs/{job_id}/cancel -> JobModel (queued: cancelled at once; running: stops within one step)
    GET  /facechain/v1/loras              -> {"loras": [{name, identity, path, sha256, prompt, ...}]}

Training runs on FaceChain's worker thread (see training_worker): the route only validates and queues, so it never
holds the host's queue lock and answers at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..schemas import JobModel, LoraListModel, TrainAcceptedModel, TrainRequestModel
from ..training.service import facechain_loras
from .api_common import ApiAuth, facechain_route, make_router
from .training_worker import cancel_job, submit_training


def add_routes(app: FastAPI, ctx: Any, auth: ApiAuth) -> None:
    router = make_router(auth, tags=["FaceChain training"])

    @facechain_route
    def start_training(body: TrainRequestModel) -> Any:
        job = submit_training(ctx, body)
        record = ctx.jobs.snapshot(job.id)
        return {"job_id": job.id, "status": record["status"], "host_task_id": job.extra.get("host_task_id")}

    @facechain_route
    def job_status(job_id: str) -> Any:
        return ctx.jobs.snapshot(job_id)

    @facechain_route
    def cancel_training(job_id: str) -> Any:
        return cancel_job(ctx, job_id)

    @facechain_route
    def list_loras() -> Any:
        return {"loras": facechain_loras(ctx)}

    router.add_api_route("/train", start_training, methods=["POST"], status_code=202, response_model=TrainAcceptedModel)
    router.add_api_route("/jobs/{job_id}", job_status, methods=["GET"], response_model=JobModel)
    router.add_api_route("/jobs/{job_id}/cancel", cancel_training, methods=["POST"], response_model=JobModel)
    router.add_api_route("/loras", list_loras, methods=["GET"], response_model=LoraListModel)
    app.include_router(router)
